"""The guided filter (He, Sun & Tang, ECCV 2010 / TPAMI 2013) and guided-filtering fusion (GFF).

GFF follows S. Li, X. Kang and J. Hu, "Image Fusion With Guided Filtering", IEEE TIP 22(7), 2013:

1. two-scale decomposition: base = 31x31 mean of each source, detail = source - base;
2. saliency = Gaussian-smoothed (11x11, sigma 5) absolute 3x3 Laplacian of each source;
3. binary weight maps: 1 where a source's saliency is the largest (both on ties), else 0;
4. each map is guided-filtered with its own source as the guide, coarsely for the base layers
   (r1 = 45, eps1 = 0.3) and finely for the detail layers (r2 = 7, eps2 = 1e-6), for images in `[0, 1]`;
5. the refined maps are normalised to sum to one per pixel and weight the base and detail layers.

One deviation: negative refined weights (the guided filter can overshoot near edges) are set to zero
before normalising, so every fused pixel is a convex combination of the sources' layers.
"""

import torch

from ..filters import box_filter, gaussian_blur, laplacian
from .validation import check_pair, working_dtype

_CPU_CHUNK_PIXELS = 2**17
"""On CPU, images are guided-filtered a few at a time (about this many pixels per chunk, at least one image),
so that the float64 window statistics stay in the cache: 2-3x faster than one pass over a large batch."""


def _guided_filter_batch(image: torch.Tensor, guide: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """The guided filter of `(N, C, H, W)` images, all at once.

    The window statistics are computed in float64: with a small `eps`, the variance `E[I^2] - E[I]^2` of a
    nearly flat window cancels catastrophically in float32. The rest runs in the inputs' (common) dtype.
    """
    means = box_filter(torch.stack([guide, image, guide * guide, guide * image]), radius, dtype=torch.float64)
    mean_guide, mean_image, mean_guide_sq, mean_product = means.unbind()
    slope = (mean_product - mean_guide * mean_image) / (mean_guide_sq - mean_guide**2 + eps)
    offset = mean_image - slope * mean_guide
    mean_slope, mean_offset = box_filter(torch.stack([slope, offset]).to(guide.dtype), radius).unbind()
    return mean_slope * guide + mean_offset


def _guided_filter(image: torch.Tensor, guide: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """`guided_filter` without the input checks; on CPU in chunks of the batch (see `_CPU_CHUNK_PIXELS`)."""
    if image.device.type != "cpu":
        return _guided_filter_batch(image, guide, radius, eps)
    chunk = max(1, _CPU_CHUNK_PIXELS // image[0].numel())
    pairs = zip(image.split(chunk), guide.split(chunk))
    return torch.cat([_guided_filter_batch(part, part_guide, radius, eps) for part, part_guide in pairs])


def guided_filter(image: torch.Tensor, guide: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Edge-preserving smoothing of `image` following the edges of `guide` (He et al.), per channel.

    In every `(2 radius + 1)^2` window the output is a linear function `a * guide + b` of the guide,
    fitted to `image` by ridge regression with penalty `eps`; each pixel averages the fits of the
    windows that cover it. Small `eps` keeps the guide's edges (with `guide == image` and `eps -> 0`
    the image is returned); huge `eps` forces `a -> 0`, i.e. the box mean of the box mean of `image`.
    Windows are clipped at the image border (box means over the inside part), and box means cost
    O(1) per pixel whatever the radius.

    Args:
        image (`torch.Tensor` of shape `(B, C, H, W)`): the images to filter.
        guide (`torch.Tensor` of shape `(B, C, H, W)`): the guidance images (same shape, dtype, device);
            `eps` is relative to their range, typically `[0, 1]`.
        radius (`int`): window radius, `>= 0`.
        eps (`float`): regularisation, `> 0`.

    Returns:
        `torch.Tensor` of shape `(B, C, H, W)` in the input dtype (not clamped).
    """
    check_pair(image, guide, names=("image", "guide"))
    if radius < 0 or eps <= 0:
        raise ValueError(f"`radius` must be >= 0 and `eps` > 0, got radius={radius} and eps={eps}.")
    dtype = working_dtype(image)
    return _guided_filter(image.to(dtype), guide.to(dtype), radius, eps).to(image.dtype)


def _normalise(weights: torch.Tensor) -> torch.Tensor:
    """Clip `(2, ...)` weights to `>= 0` and scale them to sum to one along the first axis (equal if both are 0)."""
    weights = weights.clamp(min=0) + torch.finfo(weights.dtype).tiny
    return weights / weights.sum(0)


def guided_filter_fusion(
    infrared: torch.Tensor,
    visible: torch.Tensor,
    average_radius: int = 15,
    saliency_radius: int = 5,
    saliency_sigma: float = 5.0,
    base_radius: int = 45,
    base_eps: float = 0.3,
    detail_radius: int = 7,
    detail_eps: float = 1e-6,
) -> torch.Tensor:
    """Guided-filtering fusion (GFF, Li, Kang & Hu 2013) of two sources, per channel.

    Args:
        infrared (`torch.Tensor` of shape `(B, C, H, W)`): first source, float in `[0, 1]`.
        visible (`torch.Tensor` of shape `(B, C, H, W)`): second source, same shape, dtype and device.
        average_radius (`int`, defaults to 15): radius of the mean filter of the two-scale decomposition (31x31).
        saliency_radius (`int`, defaults to 5): radius of the Gaussian that smooths the absolute Laplacian (11x11).
        saliency_sigma (`float`, defaults to 5.0): standard deviation of that Gaussian.
        base_radius (`int`, defaults to 45), base_eps (`float`, defaults to 0.3):
            guided filter refining the base-layer weights (r1, eps1).
        detail_radius (`int`, defaults to 7), detail_eps (`float`, defaults to 1e-6):
            guided filter refining the detail-layer weights (r2, eps2).

    Returns:
        `torch.Tensor` of shape `(B, C, H, W)`: the fused images in the input dtype, clamped to `[0, 1]`.
    """
    check_pair(infrared, visible)
    sources = torch.stack([infrared, visible]).to(working_dtype(infrared))  # (2, B, C, H, W)
    flat = sources.flatten(0, 1)  # (2B, C, H, W): both sources filtered in one call
    base = box_filter(sources, average_radius)
    saliency = gaussian_blur(laplacian(flat).abs(), saliency_radius, saliency_sigma).view_as(sources)
    masks = (saliency == saliency.amax(0)).to(sources.dtype).flatten(0, 1)
    base_weights = _normalise(_guided_filter(masks, flat, base_radius, base_eps).view_as(sources))
    detail_weights = _normalise(_guided_filter(masks, flat, detail_radius, detail_eps).view_as(sources))
    fused = (base_weights * base + detail_weights * (sources - base)).sum(0)
    return fused.clamp(0, 1).to(infrared.dtype)
