"""The package's image filters, one implementation each, on `(..., H, W)` torch tensors of any size: Gaussian kernels
and blur, separable correlation, the Laplacian, Sobel gradients and the box filter. The classical fusion rules, the
metrics (on float64 planes, through `torch.from_numpy`), the degradations and the example pair all filter with these.

Borders. Correlations use half-sample symmetric borders by default (the border sample is repeated: `b a | a b c`;
scipy.ndimage's `mode="reflect"`, numpy's `"symmetric"`, MATLAB's `'symmetric'`). With these borders the Laplacian
pyramid reproduces the reference numbers in DESIGN.md; torch's own `"reflect"` (`c b | a b c`) does not. The mirror is
applied as often as needed, so even a 1x1 or 2x2 image can be filtered with an 11-tap kernel. `border="valid"` keeps
only the samples whose window lies inside the image (MATLAB's `filter2(..., 'valid')`: the SSIM and VIF windows).
`sobel` takes its border as an argument, because its users follow different references: zeros (MATLAB's
`conv2(..., 'same')`: Qabf), the mirror without repetition (Kumar's `per_extn_im_fn`: Nabf) and the repeated edge
(the training script's gradient loss). The box filter needs no padding: it averages over the part of each window that
lies inside the image (He et al.'s convention for the guided filter).

Short kernels are applied as sums of shifted slices, one multiply-add per tap, which on CPU is much faster than
`conv2d` with a single input channel.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

BORDERS = ("symmetric", "reflect", "replicate", "zeros")
"""How `pad` extends an axis: `b a | a b c` (half-sample symmetric), `c b | a b c` (mirror without the edge sample),
`a a | a b c` (edge repeated), `0 0 | a b c`."""


def _border_indices(size: int, pad: int, border: str, device: torch.device) -> torch.Tensor:
    """Source index of each of the `size + 2 * pad` samples of an axis padded with `border` (not "zeros")."""
    index = torch.arange(-pad, size + pad, device=device)
    if border == "replicate":
        return index.clamp(0, size - 1)
    if border == "reflect":
        if size == 1:
            return torch.zeros_like(index)
        period = 2 * (size - 1)
        index = index.remainder(period)
        return torch.where(index < size, index, period - index)
    if border == "symmetric":
        period = 2 * size
        index = index.remainder(period)
        return torch.where(index < size, index, period - 1 - index)
    raise ValueError(f"Unknown border {border!r}; valid ones are {', '.join(BORDERS)}.")


def pad(image: torch.Tensor, pad: int, dim: int, border: str = "symmetric") -> torch.Tensor:
    """Extend axis `dim` (`-1` columns, `-2` rows) by `pad` samples at both ends, as `border` says (see `BORDERS`)."""
    if border == "zeros":
        return F.pad(image, (pad, pad) if dim == -1 else (0, 0, pad, pad))
    return image.index_select(dim, _border_indices(image.shape[dim], pad, border, image.device))


def _every(image: torch.Tensor, stride: int, dim: int) -> torch.Tensor:
    """Every `stride`-th sample along axis `dim` (negative), starting at the first."""
    return image[(..., slice(None, None, stride)) + (slice(None),) * (-dim - 1)]


def correlate1d(
    image: torch.Tensor, kernel: Sequence[float], dim: int, stride: int = 1, border: str = "symmetric"
) -> torch.Tensor:
    """Correlate along axis `dim` (`-1` or `-2`) with an odd-length kernel.

    Args:
        image (`torch.Tensor` of shape `(..., H, W)`): floating-point images.
        kernel (`Sequence[float]`): odd number of taps, centred (a list or a 1D tensor).
        dim (`int`): `-1` filters along rows (horizontally), `-2` along columns (vertically).
        stride (`int`): keep every `stride`-th output sample, starting at the first.
        border (`str`): one of `BORDERS`, or `"valid"`: no padding, the axis shrinks by `len(kernel) - 1`.

    Returns:
        `torch.Tensor`: the input shape with axis `dim` shrunk to `ceil(size / stride)` (`"valid"`: to
        `ceil((size - len(kernel) + 1) / stride)`).
    """
    weights = [float(weight) for weight in kernel]
    size = image.shape[dim]
    if border == "valid":
        padded, size = image, size - len(weights) + 1
    else:
        padded = pad(image, len(weights) // 2, dim, border)
    taps = [_every(padded.narrow(dim, offset, size), stride, dim) for offset in range(len(weights))]
    result = taps[0] * weights[0]
    for tap, weight in zip(taps[1:], weights[1:]):
        result.add_(tap, alpha=weight)
    return result


def separable_filter(
    image: torch.Tensor, kernel: Sequence[float], stride: int = 1, border: str = "symmetric"
) -> torch.Tensor:
    """Filter rows then columns with the same odd 1D `kernel`, keeping every `stride`-th sample (see `correlate1d`).

    `(..., H, W) -> (..., ceil(H / stride), ceil(W / stride))`; with `border="valid"`, `(..., H - n + 1, W - n + 1)` for
    an n-tap kernel at stride 1 (MATLAB's `filter2(outer(kernel, kernel), image, 'valid')`).
    """
    return correlate1d(correlate1d(image, kernel, -1, stride, border), kernel, -2, stride, border)


def gaussian_kernel(radius: int, sigma: float) -> torch.Tensor:
    """Normalised 1D Gaussian of `2 * radius + 1` taps (float64); `outer(k, k)` is MATLAB's
    `fspecial('gaussian', 2 * radius + 1, sigma)` (which also zeroes taps below `eps * max`: none of ours has such)."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(image: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with a `(2 radius + 1)`-tap kernel, symmetric borders; shape preserved."""
    return separable_filter(image, gaussian_kernel(radius, sigma))


def laplacian(image: torch.Tensor) -> torch.Tensor:
    """4-neighbour discrete Laplacian `[[0, 1, 0], [1, -4, 1], [0, 1, 0]]` of every channel; shape preserved."""
    second_difference = (1.0, -2.0, 1.0)
    return correlate1d(image, second_difference, -1) + correlate1d(image, second_difference, -2)


def sobel(image: torch.Tensor, border: str = "symmetric") -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel responses `(gx, gy)` of every channel, unscaled, same shape as the input.

    `gx` is the correlation with `[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]` (right minus left) and `gy` with its transpose
    (bottom minus top). `border` (see `BORDERS`): `"zeros"` is MATLAB's `conv2(..., 'same')`, `"reflect"` the mirror
    extension without edge repetition of Kumar's `per_extn_im_fn`, `"replicate"` repeats the edge. Differentiable;
    `gx.abs() + gy.abs()` is the usual gradient magnitude of fusion losses.
    """
    padded = pad(pad(image, 1, -2, border), 1, -1, border)
    rows = 2 * padded[..., 1:-1, :]  # [1, 2, 1] down the columns ...
    rows += padded[..., :-2, :]
    rows += padded[..., 2:, :]
    gx = rows[..., 2:] - rows[..., :-2]  # ... then [-1, 0, 1] along the rows
    rows = padded[..., 2:, :] - padded[..., :-2, :]  # [-1, 0, 1] down the columns ...
    gy = 2 * rows[..., 1:-1]  # ... then [1, 2, 1] along the rows
    gy += rows[..., :-2]
    gy += rows[..., 2:]
    return gx, gy


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
