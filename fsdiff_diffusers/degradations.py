"""HR -> LR degradations with known strengths: the free supervision of the clarity head.

Training pairs are made by degrading each high-resolution source on its own: Gaussian blur at HR, bicubic
downscale, then Gaussian noise at LR. Because the strengths are known, each modality gets a clarity label in
[0, 1] (1 = clean) that the [`ClarityMambaEncoder`]'s clarity head learns to predict.

```py
>>> generator = torch.Generator().manual_seed(0)
>>> strength = sample_degradation(generator, DegradationLimits())
>>> lr = degrade(hr, scale=4, blur_sigma=strength.blur_sigma, noise_std=strength.noise_std, generator=generator)
>>> label = clarity_label(4, strength.blur_sigma, strength.noise_std, DegradationLimits())
```
"""

import math
from dataclasses import dataclass

import torch

from . import filters
from .image_processor import resize


@dataclass(frozen=True)
class DegradationLimits:
    """The strongest degradation drawn at training time; strengths are normalised by these limits.

    Args:
        max_blur_sigma (`float`, defaults to 2.0): Largest Gaussian blur sigma, in HR pixels.
        max_noise_std (`float`, defaults to 0.05): Largest Gaussian noise standard deviation, on the [0, 1] scale.
        max_scale (`float`, defaults to 8.0): Largest downscaling factor.
        clean_probability (`float`, defaults to 0.25): Chance that a modality gets no blur and no noise at all.
    """

    max_blur_sigma: float = 2.0
    max_noise_std: float = 0.05
    max_scale: float = 8.0
    clean_probability: float = 0.25


@dataclass(frozen=True)
class DegradationStrength:
    """The blur and noise applied to one modality (the downscale factor is shared by the pair)."""

    blur_sigma: float
    noise_std: float


def lr_size(size_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """The low-resolution `(h, w)` of an HR image of size `size_hw` downscaled by `scale` (rounded, at least 1)."""
    if not scale >= 1:
        raise ValueError(f"`scale` must be a number >= 1, got {scale!r}.")
    return max(1, round(size_hw[0] / scale)), max(1, round(size_hw[1] / scale))


def bicubic_downscale(hr: torch.Tensor, scale: float) -> torch.Tensor:
    """Antialiased bicubic downscale of `hr` `(B, C, H, W)` in [0, 1] to `(B, C, round(H/scale), round(W/scale))`."""
    return resize(hr, lr_size(tuple(hr.shape[-2:]), scale))


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of `image` `(B, C, H, W)`, radius `ceil(3 sigma)`, the borders of
    [`filters`]; 0 is a no-op."""
    if sigma <= 0:
        return image
    return filters.gaussian_blur(image, math.ceil(3 * sigma), sigma)


def add_gaussian_noise(image: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """`image` `(B, C, H, W)` plus Gaussian noise of standard deviation `std`, clamped to [0, 1]; 0 is a no-op."""
    if std <= 0:
        return image
    noise = torch.randn(image.shape, generator=generator, device=image.device, dtype=image.dtype)
    return (image + std * noise).clamp(0.0, 1.0)


def degrade(
    hr: torch.Tensor,
    scale: float,
    blur_sigma: float = 0.0,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""
    Blur at HR, bicubic downscale, then add noise at LR.

    Args:
        hr (`torch.Tensor` of shape `(B, C, H, W)`): High-resolution images in [0, 1].
        scale (`float`): Downscaling factor, >= 1 (need not be an integer).
        blur_sigma (`float`, defaults to 0): Gaussian blur sigma in HR pixels.
        noise_std (`float`, defaults to 0): Gaussian noise standard deviation on the [0, 1] scale.
        generator (`torch.Generator`, *optional*): Draws the noise.

    Returns:
        `torch.Tensor` of shape `(B, C, round(H / scale), round(W / scale))` in [0, 1]. With no blur and no noise
        this is exactly [`bicubic_downscale`].
    """
    return add_gaussian_noise(bicubic_downscale(gaussian_blur(hr, blur_sigma), scale), noise_std, generator)


def sample_degradation(generator: torch.Generator, limits: DegradationLimits) -> DegradationStrength:
    """One modality's blur and noise: none with `limits.clean_probability`, else each uniform in [0, its limit]."""
    clean, blur, noise = torch.rand(3, generator=generator).tolist()
    if clean < limits.clean_probability:
        return DegradationStrength(0.0, 0.0)
    return DegradationStrength(blur * limits.max_blur_sigma, noise * limits.max_noise_std)


def clarity_label(scale: float, blur_sigma: float, noise_std: float, limits: DegradationLimits) -> float:
    r"""
    The clarity target of one degraded modality: 1 minus its normalised degradation strength.

    The strength is the mean of three terms, each in [0, 1]: `log(scale) / log(max_scale)` (no downscale gives 0),
    `blur_sigma / max_blur_sigma` and `noise_std / max_noise_std`, each clipped at 1. So a clean, full-resolution
    image is labelled 1, the strongest degradation 0, and the label never rises when any strength grows.
    """
    terms = (
        math.log(scale) / math.log(limits.max_scale) if limits.max_scale > 1 else 0.0,
        blur_sigma / limits.max_blur_sigma if limits.max_blur_sigma > 0 else 0.0,
        noise_std / limits.max_noise_std if limits.max_noise_std > 0 else 0.0,
    )
    return 1.0 - sum(min(max(term, 0.0), 1.0) for term in terms) / len(terms)
