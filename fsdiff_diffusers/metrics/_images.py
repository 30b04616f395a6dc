"""Input checking shared by the metrics: arrays or tensors in, float64 grey planes out; and the planes filtered with
`fsdiff_diffusers.filters` (the one filter set of the package), as numpy arrays.

Every metric is defined on one grey plane. Colour images (``(H, W, 3)``, channels-last for numpy
arrays *and* torch tensors) are evaluated per channel and the values averaged, as VIFB does. A grey
source next to a colour fused image is used for every channel; a colour source next to a grey fused
image is turned grey with MATLAB's ``rgb2gray`` weights (what VIFB does in that case).
"""

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from ..filters import separable_filter, sobel

ImageLike = np.ndarray | torch.Tensor
"""An image in the 0..255 range: ``(H, W)`` or ``(H, W, C)`` with C = 1 or 3, numpy or torch."""

Convention = Literal["vifb", "cddfuse"]
CONVENTIONS = ("vifb", "cddfuse")

# MATLAB rgb2gray: the BT.601 luma weights as MATLAB rounds them.
_RGB2GRAY = np.array([0.298936021293776, 0.587043074451121, 0.114020904255103])


def check_convention(convention: str) -> None:
    """Raise a `ValueError` unless `convention` is one of `CONVENTIONS`."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def as_image(image: ImageLike, name: str = "image") -> np.ndarray:
    """Return `image` as a float64 array of shape ``(H, W)`` or ``(H, W, 3)``.

    Raises:
        TypeError: if `image` is neither a numpy array nor a torch tensor.
        ValueError: if it is not 2-D or 3-D, has a channel count other than 1 or 3, is smaller
            than 2x2, or holds NaN or infinite values.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().to(device="cpu", dtype=torch.float64).numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(image).__name__}")
    array = np.asarray(image, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got shape {array.shape}")
    if array.ndim == 3 and array.shape[2] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (channels-last), got shape {array.shape}")
    if min(array.shape[:2]) < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array


def _planes(image: np.ndarray, num_channels: int) -> list[np.ndarray]:
    """Split `image` into `num_channels` grey planes (broadcast a grey image, rgb2gray a colour one)."""
    if image.ndim == 2:
        return [image] * num_channels
    if num_channels == 1:
        return [image @ _RGB2GRAY]
    return [image[..., channel] for channel in range(image.shape[2])]


def channel_planes(fused: ImageLike, *sources: ImageLike) -> list[tuple[np.ndarray, ...]]:
    """Check `fused` and `sources` and return one ``(fused, *sources)`` tuple of grey planes per channel.

    Raises:
        ValueError: if a source's height and width differ from the fused image's (naming both shapes).
    """
    fused = as_image(fused, "fused")
    sources = [as_image(source, f"source {index}") for index, source in enumerate(sources, 1)]
    for index, source in enumerate(sources, 1):
        if source.shape[:2] != fused.shape[:2]:
            raise ValueError(
                f"fused image and source {index} differ in size: shapes {fused.shape} and {source.shape}"
            )
    num_channels = 1 if fused.ndim == 2 else fused.shape[2]
    return list(zip(*(_planes(image, num_channels) for image in (fused, *sources))))


def channel_mean(metric: Callable[..., float], fused: ImageLike, *sources: ImageLike, **kwargs) -> float:
    """Apply a metric of grey planes to every channel of ``(fused, *sources)`` and average the values."""
    return float(np.mean([metric(*planes, **kwargs) for planes in channel_planes(fused, *sources)]))


def require_size(plane: np.ndarray, min_size: int, metric: str) -> None:
    """Raise a `ValueError` when `plane` is smaller than ``min_size x min_size`` for `metric`."""
    if min(plane.shape) < min_size:
        raise ValueError(f"{metric} needs images of at least {min_size}x{min_size} pixels, got {plane.shape}")


def _tensor(plane: np.ndarray) -> torch.Tensor:
    """A float64 tensor sharing `plane`'s memory (a C-contiguous, writable copy first where it is neither)."""
    return torch.from_numpy(np.require(plane, np.float64, ["C", "W"]))


def filter_plane(plane: np.ndarray, kernel: Sequence[float], border: str = "valid") -> np.ndarray:
    """`filters.separable_filter` of a float64 plane, as a new array: `border="valid"` is MATLAB's
    ``filter2(outer(kernel, kernel), plane, 'valid')`` (``(H - n + 1, W - n + 1)`` for an n-tap kernel),
    ``"symmetric"`` keeps the size (scipy.ndimage's mode "reflect")."""
    return separable_filter(_tensor(plane), kernel, border=border).numpy()


def sobel_plane(plane: np.ndarray, border: str) -> tuple[np.ndarray, np.ndarray]:
    """`filters.sobel` of a float64 plane, as two new arrays ``(gx, gy)`` (right minus left, bottom minus top)."""
    gx, gy = sobel(_tensor(plane), border)
    return gx.numpy(), gy.numpy()
