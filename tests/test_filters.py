"""`fsdiff_diffusers.filters`, the package's one filter set: each border of `pad` and `sobel`, the 'valid' separable
correlation and the Gaussian kernel, against `torch.nn.functional` / numpy formulations of the same filters."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fsdiff_diffusers.filters import BORDERS, gaussian_kernel, pad, separable_filter, sobel

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)


def padded_reference(image: torch.Tensor, width: int, border: str) -> torch.Tensor:
    """`image` `(B, C, H, W)` padded by `width` on every side with numpy's equivalent of `border`."""
    mode = {"symmetric": "symmetric", "reflect": "reflect", "replicate": "edge", "zeros": "constant"}[border]
    return torch.from_numpy(np.pad(image.numpy(), ((0, 0), (0, 0), (width, width), (width, width)), mode=mode))


@pytest.mark.parametrize("border", BORDERS)
def test_pad_matches_numpy(border):
    image = torch.rand(1, 2, 5, 4, dtype=torch.float64)
    padded = pad(pad(image, 3, -2, border), 3, -1, border)
    torch.testing.assert_close(padded, padded_reference(image, 3, border), rtol=0, atol=0)


@pytest.mark.parametrize("border", BORDERS)
def test_sobel_is_the_correlation_with_the_sobel_kernels(border):
    image = torch.rand(2, 1, 9, 7, dtype=torch.float64)
    kernels = torch.stack([SOBEL_X, SOBEL_X.T])[:, None]
    expected = F.conv2d(padded_reference(image, 1, border), kernels)  # conv2d correlates, as MATLAB's filter2
    gx, gy = sobel(image, border)
    torch.testing.assert_close(gx, expected[:, :1], rtol=0, atol=1e-12)
    torch.testing.assert_close(gy, expected[:, 1:], rtol=0, atol=1e-12)


def test_sobel_replicate_is_the_training_gradient():
    """The magnitude the training loss uses: conv2d on a replicate-padded batch, |Gx| + |Gy|; differentiable."""
    images = torch.rand(3, 1, 16, 12, requires_grad=True)
    kernels = torch.stack([SOBEL_X, SOBEL_X.T])[:, None].float()
    expected = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernels).abs().sum(dim=1, keepdim=True)
    gx, gy = sobel(images, "replicate")
    magnitude = gx.abs() + gy.abs()
    torch.testing.assert_close(magnitude, expected, rtol=1e-6, atol=1e-6)
    magnitude.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_valid_separable_filter_is_matlab_filter2_valid():
    image = torch.rand(13, 17, dtype=torch.float64)
    kernel = gaussian_kernel(2, 1.0)
    expected = F.conv2d(image[None, None], torch.outer(kernel, kernel)[None, None])[0, 0]
    torch.testing.assert_close(separable_filter(image, kernel, border="valid"), expected, rtol=0, atol=1e-12)


def test_gaussian_kernel_is_fspecial():
    sigma, radius = 1.5, 5
    offsets = np.arange(2 * radius + 1) - radius
    window = np.exp(-(offsets**2) / (2 * sigma**2))
    np.testing.assert_allclose(gaussian_kernel(radius, sigma).numpy(), window / window.sum(), rtol=1e-15)


def test_unknown_border():
    with pytest.raises(ValueError, match="Unknown border 'mirror'"):
        sobel(torch.rand(4, 4), "mirror")
