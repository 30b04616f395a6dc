"""Per-channel image filters on `(..., H, W)` tensors, for images of any size.

Convolutions use half-sample symmetric borders (the border sample is repeated: `b a | a b c`; scipy.ndimage's
`mode="reflect"`, numpy's `"symmetric"`, MATLAB's `'symmetric'`). With these borders the Laplacian pyramid reproduces
the reference numbers in DESIGN.md; torch's own `"reflect"` (`c b | a b c`) does not. The mirror is applied as often
as needed, so even a 1x1 or 2x2 image can be filtered with an 11-tap kernel. The box filter needs no padding: it
averages over the part of each window that lies inside the image (He et al.'s convention for the guided filter).

Short kernels are applied as sums of shifted slices, one multiply-add per tap, which on CPU is much
faster than `conv2d` with a single input channel.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _symmetric_indices(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """Source index of each of the `size + 2 * pad` samples of a symmetrically padded axis."""
    period = 2 * size
    index = torch.arange(-pad, size + pad, device=device).remainder(period)
    return torch.where(index < size, index, period - 1 - index)


def symmetric_pad(image: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Mirror `pad` samples, border sample included, onto both ends of axis `dim` (`-1` columns, `-2` rows)."""
    return image.index_select(dim, _symmetric_indices(image.shape[dim], pad, image.device))


def _every(image: torch.Tensor, stride: int, dim: int) -> torch.Tensor:
    """Every `stride`-th sample along axis `dim` (negative), starting at the first."""
    return image[(..., slice(None, None, stride)) + (slice(None),) * (-dim - 1)]


def correlate1d(image: torch.Tensor, kernel: Sequence[float], dim: int, stride: int = 1) -> torch.Tensor:
    """Correlate along axis `dim` (`-1` or `-2`) with an odd-length kernel, symmetric borders.

    Args:
        image (`torch.Tensor` of shape `(..., H, W)`): floating-point images.
        kernel (`Sequence[float]`): odd number of taps, centred.
        dim (`int`): `-1` filters along rows (horizontally), `-2` along columns (vertically).
        stride (`int`): keep every `stride`-th output sample, starting at the first.

    Returns:
        `torch.Tensor`: the input shape with axis `dim` shrunk to `ceil(size / stride)`.
    """
    size = image.shape[dim]
    padded = symmetric_pad(image, len(kernel) // 2, dim)
    taps = [_every(padded.narrow(dim, offset, size), stride, dim) for offset in range(len(kernel))]
    result = taps[0] * kernel[0]
    for tap, weight in zip(taps[1:], kernel[1:]):
        result.add_(tap, alpha=weight)
    return result


def separable_filter(image: torch.Tensor, kernel: Sequence[float], stride: int = 1) -> torch.Tensor:
    """Filter rows then columns with the same odd 1D `kernel`, keeping every `stride`-th sample.

    `(..., H, W) -> (..., ceil(H / stride), ceil(W / stride))`.
    """
    return correlate1d(correlate1d(image, kernel, -1, stride), kernel, -2, stride)


def gaussian_kernel(radius: int, sigma: float) -> torch.Tensor:
    """Normalised 1D Gaussian of `2 * radius + 1` taps (float64)."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(image: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with a `(2 radius + 1)`-tap kernel; shape preserved."""
    return separable_filter(image, gaussian_kernel(radius, sigma).tolist())


def laplacian(image: torch.Tensor) -> torch.Tensor:
    """4-neighbour discrete Laplacian `[[0, 1, 0], [1, -4, 1], [0, 1, 0]]` of every channel; shape preserved."""
    second_difference = (1.0, -2.0, 1.0)
    return correlate1d(image, second_difference, -1) + correlate1d(image, second_difference, -2)


def _window_sums_along(image: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Float64 sums over `[i - radius, i + radius]` clipped to axis `dim` (negative), from one cumulative sum."""
    size = image.shape[dim]
    # Zeros before and after the axis make every window sum a difference of two cumulative sums.
    padding = (radius + 1, radius) if dim == -1 else (0, 0, radius + 1, radius)
    cumulative = F.pad(image, padding).cumsum(dim, dtype=torch.float64)
    return cumulative.narrow(dim, 2 * radius + 1, size) - cumulative.narrow(dim, 0, size)


def _window_lengths(size: int, radius: int, device: torch.device) -> torch.Tensor:
    """Number of samples of each window `[i - radius, i + radius]` that lie inside an axis of `size` samples."""
    positions = torch.arange(size, device=device, dtype=torch.float64)
    return (positions + radius + 1).clamp(max=size) - (positions - radius).clamp(min=0)


def box_filter(image: torch.Tensor, radius: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Mean over each `(2 radius + 1) x (2 radius + 1)` window, clipped to the image.

    Costs O(1) per pixel whatever the radius (cumulative sums, accumulated in float64 so that
    differences of large sums keep the input's precision).

    Args:
        image (`torch.Tensor` of shape `(..., H, W)`): floating-point images.
        radius (`int`): window radius, `>= 0`.
        dtype (`torch.dtype`, *optional*): dtype of the result, the input's by default; `torch.float64`
            keeps the full precision of the sums.

    Returns:
        `torch.Tensor` of the same shape as `image`.
    """
    sums = _window_sums_along(_window_sums_along(image, radius, -1), radius, -2)
    height, width = image.shape[-2:]
    areas = _window_lengths(height, radius, image.device)[:, None] * _window_lengths(width, radius, image.device)
    return sums.div_(areas).to(dtype or image.dtype)
