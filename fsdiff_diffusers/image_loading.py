"""Loading one image for FS-Diff: any common kind (path, PIL image, numpy array, torch tensor; 8 or 16 bit, bool or
float) to a float32 `(C, H, W)` tensor in `[0, 1]`, with the stored values' range chosen by `input_range`, and errors
that name the image and the fix.

Layout conventions follow diffusers: numpy arrays are channels-last (``(H, W)``, ``(H, W, C)`` or
``(1, H, W, C)``), torch tensors are channels-first (``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``). The rest of the
pre- and post-processing (colour, batching, resizing, padding, output) is in `image_processor`.
"""

import math
import numbers
import os
from collections.abc import Sequence

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
"""One image: a path, a PIL image, a numpy array (channels-last) or a torch tensor (channels-first)."""

InputRange = str | tuple[float, float]
"""The stored values that map to black and white: `"auto"`, `"full"` or `(low, high)`; see [`load_image`]."""

AUTO_PERCENTILES = (0.5, 99.5)
"""The percentiles of an image's values that `input_range="auto"` maps to black and white (where it applies)."""

NARROW_SPAN = 2**14
"""Under `input_range="auto"`, uint16 images whose values span less than this (the range of a 14-bit sensor, a
quarter of the container) are stretched to their own percentile range instead of being divided by 65535."""


_ACCEPTED_CHANNELS = "1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)"
# The value of white in each integer dtype (numpy and torch names alike).
_CONTAINERS = {"uint8": 255.0, "uint16": 65535.0, "bool": 1.0}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_GREY_MODES = ("1", "L", "LA", "La")


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
    input_range = check_input_range(input_range)
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


def check_input_range(input_range: InputRange) -> InputRange:
    """`"auto"`, `"full"`, or `(low, high)` as two floats; anything else is a `ValueError`."""
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


def is_container_range(value_range: tuple[float, float]) -> bool:
    """Whether `(low, high)`, as `load_image(..., return_range=True)` reports it, is a whole container's range (floats
    in [0, 1], bool, 8 or 16 bits) rather than one chosen from the data or given explicitly."""
    return value_range[0] == 0.0 and value_range[1] in {1.0, *_CONTAINERS.values()}


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
