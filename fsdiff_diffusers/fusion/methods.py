"""`fuse`: one entry point to every classical fusion rule."""

from functools import partial
from typing import Any

import torch

from .guided_filtering import guided_filter_fusion
from .pyramid import laplacian_pyramid_fusion
from .rules import max_fusion, mean_fusion

_RULES = {
    "gff": guided_filter_fusion,
    "laplacian": laplacian_pyramid_fusion,
    "laplacian_max": partial(laplacian_pyramid_fusion, base="max"),
    "mean": mean_fusion,
    "max": max_fusion,
}

FUSION_METHODS = tuple(_RULES)
"""Names accepted by `fuse`: `"gff"`, `"laplacian"`, `"laplacian_max"`, `"mean"`, `"max"`."""


def fuse(infrared: torch.Tensor, visible: torch.Tensor, method: str = "gff", **options: Any) -> torch.Tensor:
    """Fuse two registered sources with a classical rule.

    Args:
        infrared (`torch.Tensor` of shape `(B, C, H, W)`): infrared (or MRI) images, float in `[0, 1]`.
        visible (`torch.Tensor` of shape `(B, C, H, W)`): visible (or CT / PET / SPECT) images, same shape,
            dtype and device. Colour images are fused channel by channel.
        method (`str`, defaults to `"gff"`): one of `FUSION_METHODS`:
            `"gff"` (`guided_filter_fusion`), `"laplacian"` (`laplacian_pyramid_fusion`), `"laplacian_max"`
            (`laplacian_pyramid_fusion` with `base="max"`: max-abs detail over the brighter base),
            `"mean"` (`mean_fusion`) or `"max"` (`max_fusion`).
        options: keyword arguments of the chosen rule, e.g. `levels=3` for `"laplacian"`.

    Returns:
        `torch.Tensor` of shape `(B, C, H, W)`: the fused images, same dtype and device, clamped to `[0, 1]`.
    """
    if method not in _RULES:
        raise ValueError(f"Unknown fusion method {method!r}; choose one of {', '.join(FUSION_METHODS)}.")
    return _RULES[method](infrared, visible, **options)
