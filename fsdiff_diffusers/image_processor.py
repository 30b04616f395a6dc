"""Pre- and post-processing for FS-Diff image fusion + super-resolution.

FS-Diff fuses the *luminance* of a registered infrared / visible (or MRI / CT, PET, SPECT) pair.
This module turns batches of user images (loaded by `image_loading.load_image`: paths, PIL images, numpy arrays,
torch tensors, into float32 tensors in ``[0, 1]``) into the model's inputs, splits colour images into luminance (Y)
and chroma (CbCr) with ITU-R BT.601 full-range YCbCr (the JPEG / PIL convention), resizes and pads them, and turns
the fused luminance back into PIL images, numpy arrays or tensors, re-attaching the visible image's colour.

Layout conventions follow diffusers: numpy arrays are channels-last (``(H, W)``, ``(H, W, C)`` or
``(1, H, W, C)``), torch tensors are channels-first (``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``).

Resizing (`resize`) is torch's bicubic (a = -0.75, float), the one the shipped models were trained with. The
evaluation protocol keeps PIL's (a = -0.5, 8 bits between passes) for its LR inputs and "bicubic + X" baselines,
because DESIGN.md's reference numbers were made with it; the two differ by up to 23 grey levels on real x4 inputs
(measured, with the reason for keeping both, in `fsdiff_diffusers.protocol`).
"""

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from .image_loading import ImageInput, InputRange, load_image  # also this module's names, as they always were

PipelineImageInput = ImageInput | Sequence[ImageInput]
"""A single image or a list of images (one per sample of the batch)."""

OUTPUT_TYPES = ("pil", "np", "pt")


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

    torch's bicubic (a = -0.75, in float), not PIL's (a = -0.5, 8 bits between passes) that `protocol` uses for the
    LR inputs and the "bicubic + X" baselines: the shipped models were trained on conditions upsampled by this one, and
    the baselines must keep PIL's to reproduce DESIGN.md's reference rows (see `fsdiff_diffusers.protocol`, "Why two
    bicubic upsamplers": they differ by up to 23 grey levels on real x4 inputs, 29 on noise).

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


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """`x` `(B, C, H, W)` with the same shape and values in channels-last (NHWC) memory: the layout in which the
    models' convolutions run fastest on CPU, where oneDNN would otherwise reorder every feature map before and after
    each convolution (a one-step x4 call with a 1280x960 output on one thread: about 1.15x faster in float32 and in
    bfloat16, `benchmarks/bench_fuse.py`). Convolutions pass the layout on, so converting a model's input is enough."""
    return x.contiguous(memory_format=torch.channels_last)


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
