"""`fsdiff fuse`: fuse and super-resolve one pair of image files, or every pair of two folders, with one pipeline."""

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from ..loading import DTYPES, SCHEDULER_ALIASES, load_pipeline, resolve_device
from ..pairing import Pair
from ..pipelines.checks import FSDiffChecksMixin
from ..pipelines.tiling import DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE
from ..weights import DEFAULT_MODEL, SHIPPED_MODELS
from .common import (
    EXIT_OK,
    finish,
    image_size,
    load_pair,
    non_negative_int,
    pair_folders,
    positive_int,
    process_pairs,
    report,
    scale_factor,
)
from .outputs import check_output_file, check_spares_inputs, output_folder, pending_pairs, save_image
from .progress import StepReporter

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

OUTPUT_FORMATS = {".png": {}, ".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".tif": {}, ".tiff": {}}
"""Output file extensions `fsdiff fuse` writes, and the options PIL saves each with."""
FUSE_DESCRIPTION = f"""\
Fuse and super-resolve registered infrared + visible pairs with an FS-Diff pipeline.

Give one pair of image files and an output file, or two folders and an output folder. Folder images
are paired by file name (ir/05.png goes with vi/05.jpg); files without a partner are named and left
out. The result is --scale times the input size (or exactly --size), grey or colour like the visible
image. The model is loaded once; every image is sampled from the same --seed, so a result does not
depend on the other images of the run.

Existing outputs are skipped with a message unless --overwrite is given, so a folder run that was
interrupted goes on where it stopped. A pair that cannot be read or fused is named on stderr and the
others are still fused. Exit status: 0 when every pair was fused (or skipped), 1 when some failed,
2 for bad arguments, a missing model or an unavailable device.

schedulers (--scheduler): the model's own by default (DPM-Solver++ for the shipped model); else a
short name ({", ".join(SCHEDULER_ALIASES)}) or the name of a
Diffusers scheduler class compatible with the model's, such as UniPCMultistepScheduler."""

FUSE_EPILOG = """\
examples:
  fsdiff fuse --infrared ir.png --visible vi.png --scale 4 -o fused.png
  fsdiff fuse --infrared lr/ir --visible lr/vi -o results/x2 --scale 2 --steps 20 --scheduler unipc
  fsdiff fuse --infrared ir.png --visible vi.jpg --size 640x480 --device cuda --dtype bfloat16 -o fused.jpg"""

def device_name(text: str) -> str:
    """argparse type of `--device`: auto, cpu, mps, cuda or cuda:N (availability is checked by [`resolve_device`])."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    return text


def tile_size(text: str) -> int | None:
    """argparse type of `--tile-size`: `auto` (None: the pipeline decides) or a positive number of pixels."""
    return None if text == "auto" else positive_int(text)


def input_range(text: str) -> str | tuple[float, float]:
    """argparse type of `--input-range`: `auto`, `full` or `LOW,HIGH` in the file's stored units, checked by
    [`~fsdiff_diffusers.image_loading.check_input_range`]."""
    from ..image_loading import check_input_range

    low, _, high = text.partition(",")
    try:
        return check_input_range(text if text in ("auto", "full") else (float(low), float(high)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not auto, full or LOW,HIGH with LOW < HIGH, such as 0,4095"
        ) from None


def loader_for_fusion(chosen_range: str | tuple[float, float]) -> Callable[[Path, str], np.ndarray]:
    """
    `loader(path, name)`: an image file as float32 `(H, W, C)` in `[0, 1]`, `C` in {1, 3}, an input of
    [`FSDiffPipeline`], its stored values mapped to black..white by `chosen_range` (`--input-range`); a range other
    than the file's whole container (12/14-bit or float data under `auto`, or an explicit one) is reported.
    """
    from ..image_loading import is_container_range, load_image

    def load(path: Path, name: str) -> np.ndarray:
        image, (low, high) = load_image(path, name, input_range=chosen_range, return_range=True)
        if not is_container_range((low, high)):
            report(f"{path}: stored values {low:g}..{high:g} shown as black..white (--input-range {chosen_range_text})")
        return image.permute(1, 2, 0).numpy()

    chosen_range_text = chosen_range if isinstance(chosen_range, str) else ",".join(f"{v:g}" for v in chosen_range)
    return load


def check_scheduler(scheduler: "SchedulerMixin", steps: int) -> None:
    """Runs a copy of `scheduler` through `steps` steps on a one-pixel sample, so that a scheduler that cannot sample
    this model (PNDM with a U-Net that predicts the sample, too few steps, ...) fails before any image is fused."""
    probe = type(scheduler).from_config(scheduler.config)
    sample = torch.zeros(1, 1, 1, 1)
    try:
        probe.set_timesteps(steps)
        for timestep in probe.timesteps:
            prediction = torch.zeros_like(probe.scale_model_input(sample, timestep))
            sample = probe.step(prediction, timestep, sample, return_dict=False)[0]
    except (IndexError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"the {type(scheduler).__name__} scheduler cannot sample this model in {steps} steps ({error}); choose "
            "another --scheduler or more --steps."
        ) from error


def fuse_jobs(args: argparse.Namespace) -> tuple[list[Pair], dict[str, Path]]:
    """
    The pairs of `--infrared` / `--visible` (two files or two folders) and the output file of each, by stem.
    An output that is an input, or a folder that holds one, is refused; the output folder is created.
    """
    infrared, visible = Path(args.infrared), Path(args.visible)
    for name, path in (("infrared", infrared), ("visible", visible)):
        if not path.exists():
            raise ValueError(f"the {name} path '{path}' does not exist.")
    if infrared.is_dir() != visible.is_dir():
        raise ValueError(
            f"--infrared '{infrared}' and --visible '{visible}' must be two image files or two folders, "
            "not one of each."
        )
    if infrared.is_dir():
        if args.out.suffix.lower() in OUTPUT_FORMATS or args.out.is_file():
            raise ValueError(
                f"-o '{args.out}' must be a folder when fusing folders (it gets one <name>.{args.format})."
            )
        check_spares_inputs("-o", args.out, (infrared, visible), folder=True)
        pairs = pair_folders([infrared, visible], ("infrared", "visible"))
        output_folder("-o", args.out)
        return pairs, {pair.stem: args.out / f"{pair.stem}.{args.format}" for pair in pairs}
    if args.out.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(
            f"-o '{args.out}' must be an image file ending in {', '.join(OUTPUT_FORMATS)} when fusing one pair."
        )
    check_spares_inputs("-o", args.out, (infrared, visible), folder=False)
    check_output_file("-o", args.out)
    pair = Pair(f"{infrared.name} + {visible.name}", {"infrared": infrared, "visible": visible})
    return [pair], {pair.stem: args.out}


def run_fuse(args: argparse.Namespace) -> int:
    """`fsdiff fuse`: fuse and super-resolve one pair of files, or every pair of two folders, with one pipeline."""
    device = resolve_device(args.device)
    dtype = DTYPES[args.dtype] if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    pairs, outputs = fuse_jobs(args)
    pairs = pending_pairs(pairs, outputs, args.overwrite)
    if not pairs:
        return EXIT_OK

    loading = time.perf_counter()
    pipe = load_pipeline(args.model, device, dtype, args.scheduler)
    steps = args.steps or pipe.default_num_inference_steps
    check_scheduler(pipe.scheduler, steps)
    pipe.check_tiling(args.tile_size, args.tile_overlap)
    pipe.set_progress_bar_config(disable=len(pairs) > 1 or None)  # the steps of a single pair; else pairs only
    report(
        f"model {args.model} on {device} ({str(dtype).removeprefix('torch.')}), {type(pipe.scheduler).__name__}, "
        f"{steps} step{'s' * (steps != 1)}{'' if args.steps else ' (the model default)'}; "
        f"loaded in {time.perf_counter() - loading:.1f} s"
    )
    output_size = None if args.size is None else args.size[::-1]
    scale = args.scale if args.size is None else None
    load_for_fusion = loader_for_fusion(args.input_range)

    def fuse_pair(pair: Pair) -> float:
        start = time.perf_counter()
        images = load_pair(pair, load_for_fusion)
        try:
            fused = pipe(
                infrared=images["infrared"],
                visible=images["visible"],
                scale=scale,
                output_size=output_size,
                num_inference_steps=steps,
                generator=torch.Generator().manual_seed(args.seed),
                callback_on_step_end=StepReporter(pair.stem, steps),
                tile_size=args.tile_size,
                tile_overlap=args.tile_overlap,
            ).images[0]
        except torch.cuda.OutOfMemoryError as error:
            raise ValueError(f"out of memory on {device}; fuse it smaller (--scale, --size) or on the cpu") from error
        path = outputs[pair.stem]
        save_image(fused, path, **OUTPUT_FORMATS[path.suffix.lower()])
        seconds = time.perf_counter() - start
        tqdm.write(f"{pair.stem} -> {path} ({fused.width}x{fused.height}, {seconds:.2f} s)")
        return seconds

    times, failures = process_pairs(pairs, fuse_pair, "fuse")
    if len(pairs) > 1:
        mean = f" in {sum(times.values()) / len(times):.2f} s per image" if times else ""
        print(f"fused {len(times)} of {len(pairs)} pairs into {args.out}{mean}")
    return finish(len(pairs), failures)


def add_fuse_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fuse",
        help="fuse and super-resolve image pairs (two files or two folders)",
        description=FUSE_DESCRIPTION,
        epilog=FUSE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = parser.add_argument_group("inputs and outputs")
    files.add_argument(
        "--infrared",
        required=True,
        metavar="PATH",
        help="infrared (or MRI) image, or a folder of them (low resolution)",
    )
    files.add_argument(
        "--visible", required=True, metavar="PATH", help="visible (or CT / PET / SPECT) image, or a folder of them"
    )
    files.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="output image (.png, .jpg, .tif) for one pair; output folder for folders",
    )
    files.add_argument(
        "--format",
        choices=("png", "jpg", "tif"),
        default="png",
        help="file type of the outputs in a folder (default: png; one pair: the extension of -o)",
    )
    files.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    files.add_argument(
        "--input-range",
        type=input_range,
        default="auto",
        metavar="RANGE",
        help="stored values shown as black..white: auto (default: the file's own 0.5-99.5 percentiles for 16-bit "
        "data that spans under 14 bits, such as 12/14-bit radiometric infrared, and for float data outside 0..1, "
        "such as kelvin; 8-bit and full 16-bit images as they are), full (the container: /255, /65535), or LOW,HIGH "
        "in stored units, e.g. 0,4095",
    )

    size = parser.add_argument_group("output size (one of)").add_mutually_exclusive_group()
    size.add_argument(
        "--scale", type=scale_factor, default=4.0, metavar="S", help="upscaling factor, any number >= 1 (default: 4)"
    )
    size.add_argument("--size", type=image_size, metavar="WxH", help="output size in pixels, e.g. 640x480")

    sampling = parser.add_argument_group("sampling")
    sampling.add_argument(
        "--steps",
        type=positive_int,
        metavar="N",
        help="denoising steps (default: the model's own, chosen on validation pairs; 10 for models without one)",
    )
    sampling.add_argument(
        "--scheduler", metavar="NAME", help="sampler: ddpm, ddim, dpm++, unipc, euler, heun, pndm or a class name"
    )
    sampling.add_argument("--seed", type=int, default=0, help="seed of the initial noise of every image (default: 0)")

    tiling = parser.add_argument_group("large images")
    tiling.add_argument(
        "--tile-size",
        type=tile_size,
        default=None,
        metavar="N|auto",
        help=f"denoise in overlapping tiles of N x N output pixels, in memory bounded by the tile (default: auto, "
        f"tiles of {DEFAULT_TILE_SIZE} for outputs over {FSDiffChecksMixin.max_untiled_pixels / 2**20:g} megapixels "
        "or too large for the memory; a size at least the output's turns tiling off)",
    )
    tiling.add_argument(
        "--tile-overlap",
        type=non_negative_int,
        metavar="N",
        help=f"pixels by which neighbouring tiles overlap and are blended (default: {DEFAULT_TILE_OVERLAP}, or a "
        "quarter of a smaller --tile-size)",
    )

    model = parser.add_argument_group("model and hardware")
    model.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="PATH_OR_ID",
        help=f"pipeline folder (save_pretrained), Hub id, or the name of a shipped model: {', '.join(SHIPPED_MODELS)} "
        "(default: the infrared-visible one; for fsdiff-medical pass the MRI as --infrared, CT/PET/SPECT as --visible)",
    )
    model.add_argument(
        "--device",
        type=device_name,
        default="auto",
        help="auto (default: cuda, else mps, else cpu), cpu, cuda, cuda:N, mps",
    )
    model.add_argument(
        "--dtype", choices=DTYPES, help="weights and sampling precision (default: float16 on cuda, float32 otherwise)"
    )
    parser.set_defaults(run=run_fuse)
