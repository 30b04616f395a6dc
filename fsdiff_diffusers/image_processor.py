"""Pre- and post-processing for FS-Diff image fusion + super-resolution.

FS-Diff fuses the *luminance* of a registered infrared / visible (or MRI / CT, PET, SPECT) pair.
This module turns user images of any common kind (paths, PIL images, numpy arrays, torch tensors)
into float32 tensors in ``[0, 1]``, splits colour images into luminance (Y) and chroma (CbCr) with
ITU-R BT.601 full-range YCbCr (the JPEG / PIL convention), and turns the fused luminance back into
PIL images, numpy arrays or tensors, re-attaching the visible image's colour.

Layout conventions follow diffusers: numpy arrays are channels-last (``(H, W)``, ``(H, W, C)`` or
``(1, H, W, C)``), torch tensors are channels-first (``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``).
"""

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
import torch.nn.functional as F

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
"""One image: a path, a PIL image, a numpy array (channels-last) or a torch tensor (channels-first)."""

PipelineImageInput = ImageInput | Sequence[ImageInput]
"""A single image or a list of images (one per sample of the batch)."""

InputRange = str | tuple[float, float]
"""The stored values that map to black and white: `"auto"`, `"full"` or `(low, high)`; see [`load_image`]."""

AUTO_PERCENTILES = (0.5, 99.5)
"""The percentiles of an image's values that `input_range="auto"` maps to black and white (where it applies)."""

NARROW_SPAN = 2**14
"""Under `input_range="auto"`, uint16 images whose values span less than this (the range of a 14-bit sensor, a
quarter of the container) are stretched to their own percentile range instead of being divided by 65535."""

OUTPUT_TYPES = ("pil", "np", "pt")

_ACCEPTED_CHANNELS = "1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)"
# The value of white in each integer dtype (numpy and torch names alike).
_CONTAINERS = {"uint8": 255.0, "uint16": 65535.0, "bool": 1.0}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_GREY_MODES = ("1", "L", "LA", "La")

# ITU-R BT.601 full range (JPEG / JFIF, PIL's "YCbCr"): rows give Y, Cb, Cr from R, G, B.
_RGB_TO_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    dtype=torch.float64,
)
# The exact matrix inverse, so that ``ycbcr_to_rgb(rgb_to_ycbcr(x)) == x`` up to float rounding.
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)
_CHROMA_OFFSET = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64)


@dataclass
class FusionInputs:
    """A batch of registered source pairs, ready for the fusion model.

    Args:
        infrared (`torch.Tensor` of shape `(B, 1, h, w)`):
            Luminance of the infrared (or MRI) images, float32 in `[0, 1]`.
        visible (`torch.Tensor` of shape `(B, 1, h, w)`):
            Luminance (Y) of the visible (or CT / PET / SPECT) images, float32 in `[0, 1]`.
        visible_chroma (`torch.Tensor` of shape `(B, 2, h, w)`, *optional*):
            Cb and Cr of the visible images (offset 0.5), or `None` when every visible image is grey.
            Grey samples of a mixed batch hold neutral chroma (0.5).
        is_colour (`torch.Tensor` of shape `(B,)`):
            Bool, `True` where the visible image is colour, so the output should be colour too.
    """

    infrared: torch.Tensor
    visible: torch.Tensor
    visible_chroma: torch.Tensor | None
    is_colour: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.infrared.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """`(h, w)` of the source images."""
        return tuple(self.infrared.shape[-2:])


def load_image(
    image: ImageInput, name: str = "image", input_range: InputRange = "auto", return_range: bool = False
) -> torch.Tensor | tuple[torch.Tensor, tuple[float, float]]:
    """Loads one image as a float32 CPU tensor of shape `(C, H, W)` with values in `[0, 1]`.

    Args:
        image (`ImageInput`):
            A path (`str` / `os.PathLike`); a PIL image of mode L, LA, P, RGB, RGBA, I;16(B), I or F (other
            modes are converted to RGB); a channels-last numpy array `(H, W)`, `(H, W, C)` or `(1, H, W, C)`;
            or a channels-first torch tensor `(H, W)`, `(C, H, W)` or `(1, C, H, W)`, of dtype uint8, uint16
            (16-bit PIL modes alike), bool or float.
        name (`str`):
            What the image is (e.g. `"infrared"`), used in error messages.
        input_range (`str` or `(float, float)`, defaults to `"auto"`):
            Which stored values become black (0) and white (1); values outside are clipped.
            - `"full"`: the range of the container: uint8 is divided by 255, uint16 by 65535, bool maps to {0, 1},
              and floats must already be in `[0, 1]`.
            - `"auto"`: as `"full"`, except for data that does not span its container, which is mapped from its own
              0.5 and 99.5 percentiles ([`AUTO_PERCENTILES`]; its minimum and maximum where those coincide):
              uint16 whose values span less than 2**14 ([`NARROW_SPAN`]: the 12- or 14-bit counts of a radiometric
              infrared camera, or centikelvin), and floats outside `[0, 1]` (for example kelvin). uint8, bool, floats
              in `[0, 1]` and uint16 spanning its container load exactly as under `"full"`; a constant uint16 image
              uses the full range.
            - `(low, high)`: explicit, in the stored units (counts, kelvin, ...), `low < high`.
        return_range (`bool`, defaults to `False`):
            Also return the `(low, high)` that was used, in the stored units (e.g. `(0.0, 255.0)` for 8-bit images),
            to report it.

    Returns:
        `torch.Tensor` of shape `(C, H, W)`, `C` in {1, 3}: alpha channels are dropped, and grey stored as
        three identical channels stays three channels (see [`to_luminance`]). With `return_range`, a tuple
        `(image, (low, high))`.
    """
    input_range = _check_input_range(input_range)
    if isinstance(image, (str, os.PathLike)):
        image = _open_path(image, name)
    if isinstance(image, PIL.Image.Image):
        image = _pil_to_numpy(image, name)
    if isinstance(image, np.ndarray):
        tensor, container = _numpy_to_chw(image, name), _CONTAINERS.get(image.dtype.name)
    elif isinstance(image, torch.Tensor):
        tensor = _tensor_to_chw(image, name)
        container = _CONTAINERS.get(str(tensor.dtype).removeprefix("torch."))
    else:
        raise TypeError(
            f"Unsupported {name} image type {type(image).__name__}. Pass a file path, a PIL image, a numpy "
            "array or a torch tensor."
        )
    _check_size(tensor, name)
    tensor, value_range = _to_unit_range(tensor, container, input_range, name)
    tensor = tensor[:3] if tensor.shape[0] >= 3 else tensor[:1]
    return (tensor, value_range) if return_range else tensor


def _check_input_range(input_range: InputRange) -> InputRange:
    """`"auto"`, `"full"`, or `(low, high)` as two floats; anything else is an error."""
    if input_range in ("auto", "full"):
        return input_range
    if (
        isinstance(input_range, (tuple, list))
        and len(input_range) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in input_range)
        and input_range[0] < input_range[1]
    ):
        return float(input_range[0]), float(input_range[1])
    raise ValueError(
        f"`input_range` must be 'auto', 'full' or (low, high) with finite low < high in the image's stored values, "
        f"e.g. (0, 16383) for 14-bit counts; got {input_range!r}."
    )


def _open_path(path: str | os.PathLike, name: str) -> PIL.Image.Image:
    if str(path).startswith(("http://", "https://")):
        raise ValueError(f"Cannot read {name} image '{path}': URLs are not supported, download the file first.")
    try:
        with PIL.Image.open(path) as image:
            image.load()
            return image
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ValueError(
            f"Cannot read {name} image from path '{os.fspath(path)}': {reason}. Check the path points to a "
            "readable image file (PNG, JPEG, TIFF, BMP, ...)."
        ) from error


def _pil_to_numpy(image: PIL.Image.Image, name: str) -> np.ndarray:
    """PIL image -> numpy `(H, W)` or `(H, W, C)` of dtype uint8, uint16 or float32, EXIF orientation applied."""
    image = PIL.ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        array = np.asarray(image)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ValueError(
                f"The {name} image has mode {image.mode} with values in [{array.min()}, {array.max()}]; only "
                "16-bit values (0-65535) are supported. Rescale it to 0-65535, or pass a float array in [0, 1]."
            )
        return array.astype(np.uint16)
    if image.mode in _GREY_MODES:
        return np.asarray(image.convert("L"))
    if image.mode in ("F", "RGB", "RGBA"):
        return np.asarray(image)
    try:
        return np.asarray(image.convert("RGBA" if image.mode in ("P", "PA") else "RGB"))
    except ValueError as error:
        raise ValueError(
            f"Cannot convert the {name} image from PIL mode {image.mode} to RGB ({error}). Convert it to 'RGB' "
            "or 'L' first."
        ) from error


def _numpy_to_chw(array: np.ndarray, name: str) -> torch.Tensor:
    """Channels-last numpy `(H, W)`, `(H, W, C)` or `(1, H, W, C)` -> tensor `(C, H, W)` of the same dtype."""
    if array.ndim == 4:
        _check_single(array.shape, name, "(1, H, W, C)")
        array = array[0]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(
            f"The {name} numpy array has shape {array.shape}; expected (H, W), (H, W, C) or (1, H, W, C)."
        )
    _check_channels(array.shape[-1], array.shape, name, "numpy arrays are channels-last (H, W, C)")
    if array.dtype.kind == "u" and array.dtype.itemsize == 2:  # torch < 2.3 has no uint16: exact in float32
        array = array.astype(np.float32)
    try:
        # A native-byte-order, writable copy: PIL arrays are read-only and the result must not alias the input.
        tensor = torch.from_numpy(np.array(array, dtype=array.dtype.newbyteorder("="), order="C"))
    except TypeError as error:
        raise TypeError(_dtype_message(array.dtype, name)) from error
    return tensor.permute(2, 0, 1)


def _tensor_to_chw(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Channels-first tensor `(H, W)`, `(C, H, W)` or `(1, C, H, W)` -> CPU tensor `(C, H, W)`."""
    if tensor.ndim == 4:
        _check_single(tensor.shape, name, "(1, C, H, W)")
        tensor = tensor[0]
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3:
        raise ValueError(
            f"The {name} tensor has shape {tuple(tensor.shape)}; expected (H, W), (C, H, W) or (1, C, H, W)."
        )
    _check_channels(tensor.shape[0], tuple(tensor.shape), name, "torch tensors are channels-first (C, H, W)")
    return tensor.detach().to("cpu", copy=True)  # never alias the caller's tensor


def _check_single(shape: Sequence[int], name: str, layout: str) -> None:
    if shape[0] != 1:
        raise ValueError(
            f"The {name} image has a batch dimension of {shape[0]} (shape {tuple(shape)}), but one image "
            f"{layout} is expected here. Pass a list of images to fuse a batch."
        )


def _check_channels(channels: int, shape: Sequence[int], name: str, layout: str) -> None:
    if channels not in (1, 2, 3, 4):
        raise ValueError(
            f"The {name} image has {channels} channels (shape {tuple(shape)}); accepted channel counts are "
            f"{_ACCEPTED_CHANNELS}, and {layout}."
        )


def _check_size(tensor: torch.Tensor, name: str) -> None:
    height, width = tensor.shape[-2:]
    if height * width == 0:
        raise ValueError(
            f"The {name} image is empty ({height}x{width} pixels); check the file or array really holds an image."
        )
    if height < 2 or width < 2:
        raise ValueError(
            f"The {name} image is too small ({height}x{width} pixels, H x W); at least 2x2 pixels are needed."
        )


def _dtype_message(dtype: object, name: str) -> str:
    return (
        f"Unsupported {name} image dtype {str(dtype).replace('torch.', '')}. Use uint8 (0-255), uint16 "
        "(0-65535), bool, or float with values in [0, 1]."
    )


def _to_unit_range(
    tensor: torch.Tensor, container: float | None, input_range: InputRange, name: str
) -> tuple[torch.Tensor, tuple[float, float]]:
    """Maps pixels to `[0, 1]` float32 through `input_range` (see [`load_image`]).

    Args:
        tensor (`torch.Tensor` of shape `(C, H, W)`): the stored values.
        container (`float`, *optional*): white of the integer dtype the values were stored in; `None` for floats.

    Returns:
        `(image, (low, high))`: the mapped image and the stored values that became 0 and 1.
    """
    if container is None and not tensor.is_floating_point():
        raise TypeError(_dtype_message(tensor.dtype, name))
    tensor = tensor.to(torch.float32)
    if not torch.isfinite(tensor).all():
        raise ValueError(
            f"The {name} image contains NaN or infinite pixels; replace them with finite values in [0, 1]."
        )
    if input_range not in ("auto", "full"):
        low, high = input_range
    else:
        low, high = _container_range(tensor, container, input_range, name)
    if (low, high) == (0.0, 1.0):
        return tensor.clamp(0.0, 1.0), (low, high)
    return ((tensor - low) / (high - low)).clamp(0.0, 1.0), (low, high)


def _container_range(
    tensor: torch.Tensor, container: float | None, input_range: str, name: str
) -> tuple[float, float]:
    """The `(low, high)` of `input_range="full"` or `"auto"` for the float32 values `tensor` stored in `container`."""
    low, high = tensor.min().item(), tensor.max().item()
    if container is not None:
        if input_range == "auto" and container == _CONTAINERS["uint16"] and 0 < high - low < NARROW_SPAN:
            return _percentile_range(tensor)
        return 0.0, container
    if 0.0 <= low and high <= 1.0:
        return 0.0, 1.0
    if input_range == "auto" and high > low:
        return _percentile_range(tensor)
    hint = (
        "it looks like [-1, 1]: map it with (x + 1) / 2, or"
        if low >= -1.0 and high <= 1.0
        else "divide 8-bit values by 255 or 16-bit values by 65535, or"
    )
    raise ValueError(
        f"The {name} image has float values in [{low:.4g}, {high:.4g}], but float images must be in [0, 1] under "
        f"input_range={input_range!r}; {hint} pass input_range=(low, high) in its units (e.g. kelvin)"
        + (" or 'auto' (its own percentile range)." if input_range == "full" else ".")
    )


def _percentile_range(tensor: torch.Tensor) -> tuple[float, float]:
    """The [`AUTO_PERCENTILES`] of `tensor`'s values, or its minimum and maximum where those coincide."""
    low, high = np.percentile(tensor.numpy(), AUTO_PERCENTILES)
    if high <= low:
        low, high = tensor.min().item(), tensor.max().item()
    return float(low), float(high)


def _apply_colour_matrix(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Applies a 3x3 matrix over the channel dimension (-3) of `image`."""
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"Expected 3 channels in dimension -3, got shape {tuple(image.shape)}.")
    return torch.einsum("oc,...chw->...ohw", matrix.to(image), image)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """Converts RGB to YCbCr (ITU-R BT.601 full range, as JPEG and PIL's `convert("YCbCr")`).

    Args:
        rgb (`torch.Tensor` of shape `(B, 3, H, W)` or `(3, H, W)`): float RGB in `[0, 1]`.

    Returns:
        `torch.Tensor` of the same shape: Y, Cb, Cr in `[0, 1]`, Cb and Cr offset by 0.5.
    """
    offset = _CHROMA_OFFSET.to(rgb)[:, None, None]
    return _apply_colour_matrix(rgb, _RGB_TO_YCBCR) + offset


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Exact inverse of [`rgb_to_ycbcr`]; the result is not clamped.

    Args:
        ycbcr (`torch.Tensor` of shape `(B, 3, H, W)` or `(3, H, W)`): Y, Cb, Cr with Cb / Cr offset by 0.5.

    Returns:
        `torch.Tensor` of the same shape: RGB (in `[0, 1]` for YCbCr that came from RGB in `[0, 1]`).
    """
    offset = _CHROMA_OFFSET.to(ycbcr)[:, None, None]
    return _apply_colour_matrix(ycbcr - offset, _YCBCR_TO_RGB)


def to_luminance(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Splits one image into luminance and chroma.

    Args:
        image (`torch.Tensor` of shape `(C, H, W)`, `C` in {1, 3}): as returned by [`load_image`].

    Returns:
        `(Y, CbCr)`: `Y` of shape `(1, H, W)`; `CbCr` of shape `(2, H, W)`, or `None` for grey images
        (one channel, or three identical channels).
    """
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"Expected an image of shape (1, H, W) or (3, H, W), got {tuple(image.shape)}.")
    if image.shape[0] == 1:
        return image, None
    if bool((image[0] == image[1]).all() and (image[1] == image[2]).all()):
        return image[:1], None
    ycbcr = rgb_to_ycbcr(image)
    return ycbcr[:1], ycbcr[1:]


def _as_list(images: PipelineImageInput) -> list[ImageInput]:
    return list(images) if isinstance(images, (list, tuple)) else [images]


def _check_pair_sizes(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[int, int]:
    """Checks both images of each pair, and all pairs, share one `(h, w)`; returns it."""
    sizes = []
    for index, (infrared, visible) in enumerate(pairs):
        ir_size, vi_size = tuple(infrared.shape[-2:]), tuple(visible.shape[-2:])
        if ir_size != vi_size:
            raise ValueError(
                f"Pair {index}: the infrared image is {ir_size[0]}x{ir_size[1]} but the visible image is "
                f"{vi_size[0]}x{vi_size[1]} (H x W). Register / resize them to the same size before fusing."
            )
        sizes.append(ir_size)
    for index, size in enumerate(sizes):
        if size != sizes[0]:
            raise ValueError(
                f"Pair {index} is {size[0]}x{size[1]} but pair 0 is {sizes[0][0]}x{sizes[0][1]} (H x W); all "
                "pairs of one batch must have the same size. Fuse them in separate calls."
            )
    return sizes[0]


def prepare_pair_batch(
    infrared: PipelineImageInput,
    visible: PipelineImageInput,
    input_range: InputRange | tuple[InputRange, InputRange] = "auto",
) -> FusionInputs:
    """Loads a batch of registered pairs and splits them into the luminance the model fuses and the chroma.

    Args:
        infrared (`PipelineImageInput`):
            One infrared (or MRI) image or a list of them. Colour input is reduced to its luminance (Y).
        visible (`PipelineImageInput`):
            The matching visible (or CT / PET / SPECT) image(s), same count and same size per pair. Their
            colour is kept in [`FusionInputs.visible_chroma`].
        input_range (`InputRange` or a pair of them, defaults to `"auto"`):
            How stored values map to `[0, 1]` (see [`load_image`]), for every image, or as
            `(infrared_range, visible_range)`, e.g. `((0, 16383), "auto")` for 14-bit infrared counts beside 8-bit
            visible images. `"auto"` chooses per image.

    Returns:
        [`FusionInputs`] with `infrared` and `visible` of shape `(B, 1, h, w)`.
    """
    infrared_list, visible_list = _as_list(infrared), _as_list(visible)
    if len(infrared_list) != len(visible_list):
        raise ValueError(
            f"Got {len(infrared_list)} infrared and {len(visible_list)} visible images; pass one visible image "
            "per infrared image."
        )
    if not infrared_list:
        raise ValueError("Got an empty list of images; pass at least one infrared / visible pair.")

    infrared_range, visible_range = _per_source(input_range)
    pairs = [
        (load_image(ir, f"infrared[{index}]", infrared_range), load_image(vi, f"visible[{index}]", visible_range))
        for index, (ir, vi) in enumerate(zip(infrared_list, visible_list))
    ]
    size = _check_pair_sizes(pairs)
    visible_split = [to_luminance(vi) for _, vi in pairs]
    chromas = [chroma for _, chroma in visible_split]

    is_colour = torch.tensor([chroma is not None for chroma in chromas], dtype=torch.bool)
    visible_chroma = None
    if is_colour.any():
        neutral = torch.full((2, *size), 0.5)
        visible_chroma = torch.stack([neutral if chroma is None else chroma for chroma in chromas])
    return FusionInputs(
        infrared=torch.stack([to_luminance(ir)[0] for ir, _ in pairs]),
        visible=torch.stack([luma for luma, _ in visible_split]),
        visible_chroma=visible_chroma,
        is_colour=is_colour,
    )


def _per_source(
    input_range: InputRange | tuple[InputRange, InputRange],
) -> tuple[InputRange, InputRange]:
    """`(infrared_range, visible_range)` from one range for both sources or a pair of ranges (not two numbers)."""
    if isinstance(input_range, (tuple, list)) and len(input_range) == 2 and not any(
        isinstance(value, numbers.Real) for value in input_range
    ):
        return input_range[0], input_range[1]
    return input_range, input_range


def _check_size_hw(size: Sequence[int], what: str, minimum: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in size)
        or size[0] < minimum[0]
        or size[1] < minimum[1]
    ):
        raise ValueError(
            f"{what} must be two ints (height, width), each at least {minimum[0]}x{minimum[1]}; got {size!r}."
        )
    return int(size[0]), int(size[1])


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize (`align_corners=False`, antialiased when downscaling), clamped to `[0, 1]`.

    Args:
        x (`torch.Tensor` of shape `(B, C, h, w)`): float images in `[0, 1]`.
        size (`tuple[int, int]`): the output `(H, W)`.

    Returns:
        `torch.Tensor` of shape `(B, C, H, W)`, same dtype as `x` (computed in float32).
    """
    size = _check_size_hw(size, "size")
    if tuple(x.shape[-2:]) == size:
        return x.clamp(0.0, 1.0)
    downscale = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    out = F.interpolate(x.float(), size=size, mode="bicubic", align_corners=False, antialias=downscale)
    return out.clamp(0.0, 1.0).to(x.dtype)


def output_size_for(
    size_hw: tuple[int, int], scale: float | None = None, output_size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The output `(H, W)` for source images of size `size_hw`, from an upscale factor or an explicit size.

    Exactly one of `scale` and `output_size` must be given. With `scale`, the output is
    `(round(h * scale), round(w * scale))` using Python's `round` (round half to even), so a 5x7 image
    at scale 1.5 gives 8x10 (7.5 -> 8, 10.5 -> 10).

    Args:
        size_hw (`tuple[int, int]`): source `(h, w)`.
        scale (`float`, *optional*): upscale factor, at least 1.
        output_size (`tuple[int, int]`, *optional*): `(H, W)` ints, each at least the source size.

    Returns:
        `tuple[int, int]`: the output `(H, W)`.
    """
    size_hw = _check_size_hw(size_hw, "size_hw", minimum=(2, 2))
    if (scale is None) == (output_size is None):
        raise ValueError("Pass exactly one of `scale` (e.g. 2.0) and `output_size` (e.g. (512, 640)).")
    if output_size is not None:
        return _check_size_hw(output_size, f"output_size for a {size_hw[0]}x{size_hw[1]} input", minimum=size_hw)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
        raise TypeError(f"`scale` must be a finite number such as 2 or 1.5, got {scale!r}.")
    if scale < 1:
        raise ValueError(f"`scale` is {scale}, but upscale factors start at 1 (1 = same size, 2 = twice the size).")
    return round(size_hw[0] * scale), round(size_hw[1] * scale)


def pad_to_multiple(x: torch.Tensor, multiple: int, margin: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pads `x` by `margin` pixels on every side, then its bottom / right so that its height and width are multiples
    of `multiple`.

    Uses reflect padding, or replicate padding along an axis that is too short to reflect (pad >= size). A margin
    keeps the zero padding of a model's convolutions away from the image: its output near the image's edges then
    sees mirrored content around them, as it does inside, instead of zeros.

    Args:
        x (`torch.Tensor` of shape `(B, C, H, W)`): images.
        multiple (`int`): a positive int, e.g. the model's total downsampling factor.
        margin (`int`, defaults to 0): pixels added on every side first.

    Returns:
        `(padded, (H, W))`: `padded` of shape `(B, C, H', W')`, and the original size for [`crop_to`].
    """
    if isinstance(multiple, bool) or not isinstance(multiple, numbers.Integral) or multiple < 1:
        raise ValueError(f"`multiple` must be a positive int, got {multiple!r}.")
    if isinstance(margin, bool) or not isinstance(margin, numbers.Integral) or margin < 0:
        raise ValueError(f"`margin` must be a non-negative int, got {margin!r}.")
    height, width = x.shape[-2:]
    bottom, right = margin + -(height + 2 * margin) % multiple, margin + -(width + 2 * margin) % multiple
    x = _pad_side(x, (0, 0, margin, bottom), bottom < height)
    x = _pad_side(x, (margin, right, 0, 0), right < width)
    return x, (height, width)


def _pad_side(x: torch.Tensor, padding: tuple[int, int, int, int], can_reflect: bool) -> torch.Tensor:
    if not any(padding):
        return x
    return F.pad(x, padding, mode="reflect" if can_reflect else "replicate")


def crop_to(x: torch.Tensor, size_hw: tuple[int, int], margin: int = 0) -> torch.Tensor:
    """Crops the `(H, W)` of `x` (`(..., H', W')`) that starts `margin` pixels from its top-left corner, undoing
    [`pad_to_multiple`]."""
    height, width = _check_size_hw(size_hw, "size_hw")
    if margin + height > x.shape[-2] or margin + width > x.shape[-1]:
        raise ValueError(
            f"Cannot crop {height}x{width} at a margin of {margin} from a tensor of shape {tuple(x.shape)}: it is "
            "smaller."
        )
    return x[..., margin : margin + height, margin : margin + width]


def postprocess(
    luminance: torch.Tensor,
    chroma: torch.Tensor | None = None,
    is_colour: torch.Tensor | None = None,
    output_type: str = "pil",
) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
    """Turns fused luminance (plus the visible chroma) into output images.

    Args:
        luminance (`torch.Tensor` of shape `(B, 1, H, W)`): fused Y in `[0, 1]` (clamped).
        chroma (`torch.Tensor` of shape `(B, 2, h, w)`, *optional*):
            Cb, Cr (offset 0.5) of the visible images; resized bicubically to `(H, W)` if `(h, w)` differs.
            `None` gives grey outputs.
        is_colour (`torch.Tensor` of shape `(B,)`, *optional*):
            Bool, which samples are colour; defaults to all when `chroma` is given.
        output_type (`str`): `"pil"`, `"np"` or `"pt"`.

    Returns:
        `"pil"`: a list of `B` PIL images, mode "L" for grey and "RGB" for colour samples.
        `"np"`: float32 array `(B, H, W, C)` in `[0, 1]`; `"pt"`: float32 tensor `(B, C, H, W)` in `[0, 1]`.
        `C` is 1 when all samples are grey, else 3 (grey samples replicated).
    """
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"Unknown output_type {output_type!r}; valid ones are {', '.join(OUTPUT_TYPES)}.")
    if luminance.ndim != 4 or luminance.shape[1] != 1:
        raise ValueError(f"`luminance` must have shape (B, 1, H, W), got {tuple(luminance.shape)}.")
    luminance = luminance.float().clamp(0.0, 1.0)
    is_colour = _colour_mask(luminance, chroma, is_colour)
    images = luminance
    if is_colour.any():
        chroma = resize(chroma.float().to(luminance.device), tuple(luminance.shape[-2:]))
        rgb = ycbcr_to_rgb(torch.cat([luminance, chroma], dim=1)).clamp(0.0, 1.0)
        images = torch.where(is_colour.to(rgb.device)[:, None, None, None], rgb, luminance.expand_as(rgb))
    if output_type == "pt":
        return images
    if output_type == "np":
        return images.permute(0, 2, 3, 1).cpu().numpy()
    return [_to_pil(image if colour else image[:1]) for image, colour in zip(images.cpu(), is_colour.tolist())]


def _colour_mask(
    luminance: torch.Tensor, chroma: torch.Tensor | None, is_colour: torch.Tensor | None
) -> torch.Tensor:
    """Validates `chroma` / `is_colour` against `luminance` and returns the `(B,)` bool colour mask (CPU)."""
    batch = luminance.shape[0]
    if chroma is not None and (chroma.ndim != 4 or chroma.shape[:2] != (batch, 2)):
        raise ValueError(f"`chroma` must have shape ({batch}, 2, H, W), got {tuple(chroma.shape)}.")
    if is_colour is None:
        return torch.full((batch,), chroma is not None)
    is_colour = torch.as_tensor(is_colour, dtype=torch.bool).cpu().reshape(-1)
    if is_colour.shape[0] != batch:
        raise ValueError(f"`is_colour` must have shape ({batch},), got {tuple(is_colour.shape)}.")
    if chroma is None and is_colour.any():
        raise ValueError("`is_colour` marks colour samples but `chroma` is None; pass the visible chroma.")
    return is_colour


def _to_pil(image: torch.Tensor) -> PIL.Image.Image:
    """`(1, H, W)` or `(3, H, W)` float in `[0, 1]` -> PIL "L" or "RGB", rounded to uint8."""
    array = (image * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return PIL.Image.fromarray(array[:, :, 0] if array.shape[-1] == 1 else array)
