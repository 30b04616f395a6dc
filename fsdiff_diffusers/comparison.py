"""One FS-Diff result beside what it is judged against, for the demo app and the README gallery: the bicubic-upsampled
sources, the best classical "bicubic + fusion" baseline, the encoder's clarity maps and the time the pipeline took.

```py
>>> from fsdiff_diffusers.comparison import compare
>>> from fsdiff_diffusers.example_pair import example_pair
>>> from fsdiff_diffusers.loading import load_pipeline

>>> result = compare(load_pipeline("fsdiff-ir-vis"), *example_pair(), scale=4)
>>> result.fused.size, result.baseline.size, result.clarity.shape
((640, 480), (640, 480), (480, 640, 2))
```
"""

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import torch

from . import protocol
from .image_processor import ImageInput, load_image, output_size_for, postprocess, resize, to_luminance

if TYPE_CHECKING:
    from .pipelines.pipeline_fsdiff import FSDiffPipeline

BASELINE_METHOD = "laplacian_max"
"""The classical rule of the baseline shown beside FS-Diff. In the quality report (`benchmarks/RESULTS.md`, test split,
x4) "bicubic + laplacian_max" is the best baseline on the most of the nine target metrics for TNO, MSRS, LLVIP,
MRI-CT and MRI-SPECT ("bicubic + max" for MRI-PET), and it is the fusion the shipped models' residual is added to."""

CPU_MEGAPIXEL_STEPS = 2.0
"""The demo's cap of one request on the CPU, in output megapixels times denoising steps (`max_output_pixels` of
[`compare`] is this over the steps). The shipped models take about 5-10 s per output megapixel and step on one core in
float32 (`benchmarks/bench_fuse.py`), so a request at the defaults (1 step, 2 MP at most) ends in well under a
minute there."""

INFERNO = np.array(
    [[0, 0, 4], [33, 12, 74], [87, 16, 110], [138, 34, 106], [188, 55, 84], [228, 90, 49], [249, 142, 9]]
    + [[249, 203, 53], [252, 255, 164]],
    dtype=np.float64,
)
"""matplotlib's "inferno" colour map at 0, 1/8, ..., 1 (RGB, 0-255), for [`heat_map`]."""


@dataclass
class Comparison:
    """An FS-Diff result and its references, all at the output size `(H, W)`.

    Args:
        fused (`PIL.Image.Image`): FS-Diff's output, grey ("L") or colour ("RGB") like the visible source.
        baseline (`PIL.Image.Image`): "bicubic + [`BASELINE_METHOD`]" of the protocol (PIL bicubic to 8-bit grey,
            then the rule), with the visible source's colour put back as the pipeline does.
        infrared_bicubic (`PIL.Image.Image`): the first source (infrared or MRI), PIL bicubic upsampled.
        visible_bicubic (`PIL.Image.Image`): the second source (visible, CT, PET or SPECT), PIL bicubic upsampled.
        clarity (`np.ndarray` of shape `(H, W, 2)`): the encoder's clarity of each source (infrared / MRI first),
            float32 in (0, 1), 1 where the source is sharp and clean.
        seconds (`float`): wall time of the pipeline call (the baseline and the rest not included).
        source_size (`tuple[int, int]`): `(h, w)` of the sources as given.
        input_size (`tuple[int, int]`): `(h, w)` they were fused at: `source_size`, or smaller where
            `max_output_pixels` shrank them (see [`fit_to_output_pixels`]).
        num_inference_steps (`int`): the denoising steps the pipeline took.
    """

    fused: PIL.Image.Image
    baseline: PIL.Image.Image
    infrared_bicubic: PIL.Image.Image
    visible_bicubic: PIL.Image.Image
    clarity: np.ndarray
    seconds: float
    source_size: tuple[int, int]
    input_size: tuple[int, int]
    num_inference_steps: int

    @property
    def was_shrunk(self) -> bool:
        """Whether the sources were shrunk to keep the output within `max_output_pixels`."""
        return self.input_size != self.source_size


def fit_to_output_pixels(
    infrared: torch.Tensor, visible: torch.Tensor, scale: float, max_output_pixels: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shrinks a pair (torch bicubic, antialiased, aspect kept) so that its output at `scale` has at most about
    `max_output_pixels` pixels; the scale itself is kept.

    Args:
        infrared (`torch.Tensor` of shape `(C, h, w)`): first source in `[0, 1]` (see [`load_image`]).
        visible (`torch.Tensor` of shape `(C, h, w)`): second source.
        scale (`float`): the upscaling factor the pair will be fused at.
        max_output_pixels (`int`, *optional*): the cap; `None` for none.

    Returns:
        `(infrared, visible)`, shrunk or as they were. A pair of two sizes is returned as it is, for the pipeline to
        refuse with its own message.
    """
    size = tuple(infrared.shape[-2:])
    output_height, output_width = output_size_for(size, scale)
    if max_output_pixels is None or output_height * output_width <= max_output_pixels or size != visible.shape[-2:]:
        return infrared, visible
    factor = math.sqrt(max_output_pixels / (output_height * output_width))
    fitted = (max(2, math.floor(size[0] * factor)), max(2, math.floor(size[1] * factor)))
    return resize(infrared[None], fitted)[0], resize(visible[None], fitted)[0]


def heat_map(values: np.ndarray) -> np.ndarray:
    """`(H, W)` values in `[0, 1]` -> `(H, W, 3)` uint8 RGB on matplotlib's "inferno" scale (black, purple, orange,
    pale yellow), linear between [`INFERNO`]'s colours."""
    positions = np.linspace(0.0, 1.0, len(INFERNO))
    values = np.clip(values, 0.0, 1.0)
    channels = [np.interp(values, positions, INFERNO[:, channel]) for channel in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def compare(
    pipe: "FSDiffPipeline",
    infrared: ImageInput,
    visible: ImageInput,
    scale: float = 4.0,
    num_inference_steps: int | None = None,
    seed: int = 0,
    max_output_pixels: int | None = None,
) -> Comparison:
    """
    Fuses and super-resolves one pair with `pipe` and makes its references.

    Args:
        pipe ([`FSDiffPipeline`]): the pipeline (its scheduler as it is set).
        infrared (`ImageInput`): the first source, infrared or MRI (a path, PIL image, array or tensor; see
            [`load_image`]).
        visible (`ImageInput`): the second source, visible, CT, PET or SPECT, the same size.
        scale (`float`, defaults to 4): the upscaling factor, at least 1.
        num_inference_steps (`int`, *optional*): denoising steps; the pipeline's default (1 for the shipped models).
        seed (`int`, defaults to 0): seed of the initial noise.
        max_output_pixels (`int`, *optional*): shrink larger requests first (see [`fit_to_output_pixels`]).

    Returns:
        [`Comparison`]

    Raises:
        `ValueError`: the pipeline's or the loader's message, for a file that cannot be read, sources of two sizes,
            a bad scale or step count, or an output that does not fit in memory.
    """
    infrared_image, visible_image = load_image(infrared, "infrared"), load_image(visible, "visible")
    source_size = tuple(infrared_image.shape[-2:])
    infrared_image, visible_image = fit_to_output_pixels(infrared_image, visible_image, scale, max_output_pixels)
    steps = num_inference_steps or pipe.default_num_inference_steps
    start = time.perf_counter()
    output = pipe(
        infrared_image,
        visible_image,
        scale=scale,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(seed),
        return_clarity=True,
    )
    seconds = time.perf_counter() - start

    infrared_array, visible_array = (_to_array(image) for image in (infrared_image, visible_image))
    baseline = protocol.bicubic_fusion_baseline(
        protocol.to_grey(infrared_image), protocol.to_grey(visible_image), scale, BASELINE_METHOD
    )
    chroma = to_luminance(visible_image)[1]
    baseline_luminance = torch.from_numpy(baseline.astype(np.float32) / 255)[None, None]
    return Comparison(
        fused=output.images[0],
        baseline=postprocess(baseline_luminance, None if chroma is None else chroma[None])[0],
        infrared_bicubic=PIL.Image.fromarray(protocol.upscale(infrared_array, scale)),
        visible_bicubic=PIL.Image.fromarray(protocol.upscale(visible_array, scale)),
        clarity=output.clarity[0],
        seconds=seconds,
        source_size=source_size,
        input_size=tuple(infrared_image.shape[-2:]),
        num_inference_steps=steps,
    )


def _to_array(image: torch.Tensor) -> np.ndarray:
    """`(C, H, W)` float in `[0, 1]` -> uint8 `(H, W)` (grey) or `(H, W, 3)` (colour) for PIL."""
    return protocol.to_uint8(image.permute(1, 2, 0).squeeze(-1).numpy())
