"""The x2 / x4 / x8 evaluation protocol of fusion + super-resolution, and its "bicubic + fusion" baselines.

For each registered pair: both sources become 8-bit grey (PIL's ``convert("L")``, i.e. the BT.601
luminance rounded to 8 bits); they are cropped at the top left to a multiple of the scale (the HR
images); the LR inputs are their PIL bicubic downscales. A method turns the two LR images into one
HR-size fused image, which is judged with `fsdiff_diffusers.metrics` against the two HR sources.
PIL's bicubic filter is used throughout because the project's reference numbers were made with it.

Why two bicubic upsamplers. The pipeline upsamples its conditions with torch (`image_processor.resize`), and the two
differ: PIL is Keys' cubic with a = -0.5, rounded to 8 bits between its horizontal and vertical passes, with its own
border weights; torch's is a = -0.75 in float (OpenCV's choice). On uniform noise they differ by up to 29 grey levels
(64x64 upscaled x4; mean 4.1); on the TNO test pairs' x4 LR inputs by up to 23 (mean 0.47). One upsampler would
either move the baselines or the models: "bicubic + X" with torch's upsampling moves the TNO x4 reference rows of
DESIGN.md by up to 3.6 % (AG, Qabf; PIL reproduces them within 0.25 %, the check allows 0.5 %), and the shipped models
were trained on torch-upsampled conditions (`training/dataset.py`), which PIL's softer kernel and 8-bit rounding
would change. So the protocol (LR inputs, baselines, HKDnet references) keeps PIL and the pipeline keeps torch.

Images are numpy arrays of shape ``(H, W)``, dtype uint8 (0..255), ready for the metrics.

```py
>>> from fsdiff_diffusers import metrics, protocol
>>> infrared, visible = protocol.load_grey("TNO/ir/01.png"), protocol.load_grey("TNO/vi/01.png")
>>> pair = protocol.make_pair(infrared, visible, scale=4)
>>> fused = protocol.bicubic_fusion_baseline(pair.infrared_lr, pair.visible_lr, scale=4, method="laplacian")
>>> metrics.evaluate(fused, pair.infrared, pair.visible)
```
"""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from .fusion import fuse
from .image_processor import ImageInput, load_image, output_size_for


@dataclass(frozen=True)
class ProtocolPair:
    """One pair as the protocol uses it: the HR sources (cropped) and their LR versions, all uint8 `(H, W)`.

    Args:
        infrared (`np.ndarray`): the HR infrared (or MRI) image, `(H, W)` with `H` and `W` multiples of `scale`.
        visible (`np.ndarray`): the HR visible (or CT / PET / SPECT) image, same size.
        infrared_lr (`np.ndarray`): the infrared image downscaled by `scale`, `(H / scale, W / scale)`.
        visible_lr (`np.ndarray`): the visible image downscaled by `scale`.
        scale (`int`): the downscaling factor.
    """

    infrared: np.ndarray
    visible: np.ndarray
    infrared_lr: np.ndarray
    visible_lr: np.ndarray
    scale: int


def to_grey(image: torch.Tensor) -> np.ndarray:
    """`(C, H, W)` float image in `[0, 1]` (from [`load_image`]) -> uint8 `(H, W)` grey, as PIL's `convert("L")`."""
    array = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[-1] == 1:
        return array[..., 0]
    return np.asarray(PIL.Image.fromarray(array).convert("L"))


def load_grey(image: ImageInput, name: str = "image") -> np.ndarray:
    """Loads `image` (a path, PIL image, array or tensor; see [`load_image`]) as uint8 `(H, W)` grey.

    Raises:
        ValueError: naming `name` and the file when it cannot be read as an image.
    """
    return to_grey(load_image(image, name))


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    """The top-left part of `image` whose height and width are multiples of `scale`."""
    height, width = image.shape[:2]
    if height < scale or width < scale:
        raise ValueError(f"A {height}x{width} image is smaller than the scale {scale}; it has no LR version.")
    return image[: height - height % scale, : width - width % scale]


def bicubic_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bicubic resize of a uint8 `(H, W)` image to `size = (height, width)` (antialiased when shrinking)."""
    resized = PIL.Image.fromarray(image).resize((size[1], size[0]), PIL.Image.Resampling.BICUBIC)
    return np.asarray(resized)


def downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """The LR version of an HR image whose sides are multiples of `scale`: PIL bicubic, `1 / scale` the size."""
    height, width = image.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"{height}x{width} is not a multiple of the scale {scale}; crop it with crop_to_multiple.")
    return bicubic_resize(image, (height // scale, width // scale))


def upscale(image: np.ndarray, scale: float) -> np.ndarray:
    """PIL bicubic upscale by `scale >= 1`; the size is rounded as in [`output_size_for`]."""
    return bicubic_resize(image, output_size_for(image.shape[:2], scale=scale))


def make_pair(infrared: np.ndarray, visible: np.ndarray, scale: int) -> ProtocolPair:
    """Crops a registered grey pair to a multiple of `scale` and makes its LR inputs.

    Args:
        infrared (`np.ndarray`): uint8 `(H, W)` first source (see [`load_grey`]).
        visible (`np.ndarray`): uint8 `(H, W)` second source, same size.
        scale (`int`): the super-resolution factor, e.g. 2, 4 or 8.

    Returns:
        [`ProtocolPair`]
    """
    if infrared.shape != visible.shape:
        raise ValueError(f"The infrared image is {infrared.shape} but the visible image is {visible.shape} (H, W).")
    infrared, visible = crop_to_multiple(infrared, scale), crop_to_multiple(visible, scale)
    return ProtocolPair(infrared, visible, downscale(infrared, scale), downscale(visible, scale), scale)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in `[0, 1]` -> uint8 0..255 by `np.round` (halves to even), as the reference numbers were made.

    Values are first snapped to 1/1000 of a grey level: float32 arithmetic on `k / 255` inputs leaves errors of
    ~1e-5 grey levels, which would otherwise push exact halves (the mean of an odd sum) up or down at random.
    """
    return np.round(np.round(image.astype(np.float64) * 255, 3)).astype(np.uint8)


def fuse_grey(infrared: np.ndarray, visible: np.ndarray, method: str) -> np.ndarray:
    """Fuses two uint8 `(H, W)` images with [`fuse`] (`method` in `FUSION_METHODS`); the result is uint8 (see
    [`to_uint8`])."""
    sources = [torch.from_numpy(image.astype(np.float32) / 255)[None, None] for image in (infrared, visible)]
    return to_uint8(fuse(*sources, method=method)[0, 0].numpy())


def bicubic_fusion_baseline(infrared_lr: np.ndarray, visible_lr: np.ndarray, scale: float, method: str) -> np.ndarray:
    """The "bicubic + fusion" peer of a joint fusion + super-resolution method.

    Both LR sources are upsampled by `scale` with PIL's bicubic filter (to 8 bits), then fused with a classical rule.

    Args:
        infrared_lr (`np.ndarray`): uint8 `(h, w)` LR first source.
        visible_lr (`np.ndarray`): uint8 `(h, w)` LR second source.
        scale (`float`): the upscaling factor (>= 1; the output is `(round(h * scale), round(w * scale))`).
        method (`str`): a name out of `fsdiff_diffusers.fusion.FUSION_METHODS` ("gff", "laplacian", "mean", "max").

    Returns:
        `np.ndarray`: the fused HR image, uint8 `(H, W)`.
    """
    if infrared_lr.shape != visible_lr.shape:
        raise ValueError(
            f"The infrared image is {infrared_lr.shape} but the visible image is {visible_lr.shape} (H, W); the "
            "sources of a pair must be registered and of one size."
        )
    return fuse_grey(upscale(infrared_lr, scale), upscale(visible_lr, scale), method)
