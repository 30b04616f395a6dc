"""Laplacian-pyramid fusion (Burt & Adelson): max-abs detail selection, averaged base.

Each level blurs with the 5-tap binomial kernel `[1, 4, 6, 4, 1] / 16` (half-sample symmetric borders) and keeps
every other row and column, so an `H x W` level has a `ceil(H / 2) x ceil(W / 2)` parent; odd sizes
need no cropping or padding. Expanding zero-fills the skipped samples and blurs with twice the
kernel (per axis), back to the exact child size.

Depth adapts to small images: a pyramid asked for `levels` detail bands gets
`min(levels, floor(log2(min(H, W))))`, so the coarsest (base) level is never smaller than one
pixel along the short side. A 2x2 image gets one detail band, a 5x7 image two; a 1-pixel-high image
gets none, and its fusion is the average of the sources.
"""


import torch

from ..filters import separable_filter
from .validation import check_image, check_pair, working_dtype

BINOMIAL_KERNEL = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
"""The 5-tap binomial (Burt-Adelson, a = 0.375) low-pass kernel."""


BASE_RULES = {"mean": lambda a, b: (a + b) / 2, "max": torch.maximum}
"""How `laplacian_pyramid_fusion` combines the two low-pass bases."""


def pyramid_depth(height: int, width: int, levels: int) -> int:
    """Number of detail bands actually used for an `height x width` image asked for `levels`."""
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 0:
        raise ValueError(f"`levels` must be a non-negative integer, got {levels!r}.")
    return min(levels, min(height, width).bit_length() - 1)


def _reduce(image: torch.Tensor) -> torch.Tensor:
    """Blur and decimate: `(B, C, H, W) -> (B, C, ceil(H / 2), ceil(W / 2))`."""
    return separable_filter(image, BINOMIAL_KERNEL, stride=2)


def _expand(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Upsample `(B, C, ceil(H / 2), ceil(W / 2))` to `(B, C, H, W)` with `size = (H, W)`."""
    upsampled = image.new_zeros(*image.shape[:2], *size)
    upsampled[..., ::2, ::2] = image
    return separable_filter(upsampled, [2 * weight for weight in BINOMIAL_KERNEL])


def laplacian_pyramid(image: torch.Tensor, levels: int = 4) -> list[torch.Tensor]:
    """Decompose images into detail bands and a low-pass base.

    Args:
        image (`torch.Tensor` of shape `(B, C, H, W)`): floating-point images.
        levels (`int`): number of detail bands wanted; fewer are made for small images (see module docs).

    Returns:
        `list[torch.Tensor]`: `depth` detail bands, finest first (the first of shape `(B, C, H, W)`, each next
        one half the size, rounded up), then the base; `depth + 1` tensors in the input's dtype (at least
        float32). `reconstruct_laplacian_pyramid` inverts it exactly (up to float rounding).
    """
    check_image(image, "image")
    return _decompose(image, levels)


def _decompose(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """`laplacian_pyramid` without the input checks."""
    depth = pyramid_depth(*image.shape[-2:], levels)
    current = image.to(working_dtype(image))
    pyramid = []
    for _ in range(depth):
        coarser = _reduce(current)
        pyramid.append(current - _expand(coarser, current.shape[-2:]))
        current = coarser
    return pyramid + [current]


def reconstruct_laplacian_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Collapse a pyramid from `laplacian_pyramid` back into `(B, C, H, W)` images."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = band + _expand(image, band.shape[-2:])
    return image


def laplacian_pyramid_fusion(
    infrared: torch.Tensor, visible: torch.Tensor, levels: int = 4, base: str = "mean"
) -> torch.Tensor:
    """Fuse two sources in a Laplacian pyramid.

    Each detail coefficient is taken from the source with the larger absolute value (the infrared one
    on ties); the two bases are averaged (`base="mean"`) or the brighter one is kept pixel by pixel
    (`base="max"`: hot infrared targets keep their full contrast, while the visible texture still comes
    through the detail bands, unlike a pixel-wise `max` fusion that drops it wherever the infrared is brighter).

    Args:
        infrared (`torch.Tensor` of shape `(B, C, H, W)`): first source, float in `[0, 1]`.
        visible (`torch.Tensor` of shape `(B, C, H, W)`): second source, same shape, dtype and device.
        levels (`int`, defaults to 4): number of detail bands; fewer for small images (see module docs).
        base (`str`, defaults to `"mean"`): how the two low-pass bases are combined, `"mean"` or `"max"`.

    Returns:
        `torch.Tensor` of shape `(B, C, H, W)`: the fused images in the input dtype, clamped to `[0, 1]`.
    """
    check_pair(infrared, visible)
    if base not in BASE_RULES:
        raise ValueError(f"`base` must be one of {tuple(BASE_RULES)}, got {base!r}.")
    batch = infrared.shape[0]
    bands = _decompose(torch.cat([infrared, visible]), levels)
    fused = [torch.where(band[:batch].abs() >= band[batch:].abs(), band[:batch], band[batch:]) for band in bands[:-1]]
    fused.append(BASE_RULES[base](bands[-1][:batch], bands[-1][batch:]))
    return reconstruct_laplacian_pyramid(fused).clamp(0, 1).to(infrared.dtype)
