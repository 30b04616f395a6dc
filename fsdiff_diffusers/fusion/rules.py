"""Pixel-wise fusion rules: average and maximum."""

import torch

from .validation import check_pair


def mean_fusion(infrared: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Average of the two sources.

    Args:
        infrared (`torch.Tensor` of shape `(B, C, H, W)`): first source, float in `[0, 1]`.
        visible (`torch.Tensor` of shape `(B, C, H, W)`): second source, same shape, dtype and device.

    Returns:
        `torch.Tensor` of shape `(B, C, H, W)`: the fused images, clamped to `[0, 1]`.
    """
    check_pair(infrared, visible)
    return ((infrared + visible) / 2).clamp(0, 1)


def max_fusion(infrared: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Pixel-wise maximum of the two sources (the brighter one wins).

    Args:
        infrared (`torch.Tensor` of shape `(B, C, H, W)`): first source, float in `[0, 1]`.
        visible (`torch.Tensor` of shape `(B, C, H, W)`): second source, same shape, dtype and device.

    Returns:
        `torch.Tensor` of shape `(B, C, H, W)`: the fused images, clamped to `[0, 1]`.
    """
    check_pair(infrared, visible)
    return torch.maximum(infrared, visible).clamp(0, 1)
