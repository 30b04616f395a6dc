"""`fsdiff fuse`: fuse and super-resolve one pair of image files, every pair of two folders or every row of a `datasets`
dataset with one pipeline; in batches of pairs of one size (`--batch-size`), and shared between the processes of a
`torchrun` / `accelerate launch` launch (see [`batches`])."""

import argparse
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import torch
from tqdm.auto import tqdm

from ..loading import DTYPES, SCHEDULER_ALIASES, load_pipeline, resolve_device
from ..pipelines.checks import FSDiffChecksMixin
from ..pipelines.tiling import DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE
from ..weights import DEFAULT_MODEL, SHIPPED_MODELS
from .batches import Processes, fuse_in_batches
from .common import EXIT_OK, finish, image_size, non_negative_int, positive_int, report, scale_factor
from .jobs import OUTPUT_FORMATS, FuseJob, fuse_jobs
from .outputs import pending_pairs, save_image
from .progress import StepReporter

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

FUSE_DESCRIPTION = f"""\
Fuse and super-resolve registered infrared + visible pairs with an FS-Diff pipeline.

Give one pair of image files and an output file, or two folders and an output folder. Folder images
are paired by file name (ir/05.png goes with vi/05.jpg); files without a partner are named and left
out. A `datasets` dataset (--dataset_name, --dataset_path) gives one output file per row. The result
is --scale times the input size (or exactly --size), grey or colour like the visible image. The
model is loaded once; every image is sampled from the same --seed, so a result does not depend on the
other images of the run (in a --batch-size batch: up to float rounding).

Launched as several processes (torchrun --nproc_per_node N -m fsdiff_diffusers fuse ..., or
accelerate launch --multi_gpu --num_processes N -m fsdiff_diffusers fuse ...), each process fuses
every N-th pair, on its own GPU where there are GPUs; the results are those of one process.

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
  fsdiff fuse --infrared lr/ir --visible lr/vi -o results/x2 --scale 2 --steps 20 --scheduler unipc --batch-size 4
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


def run_fuse(args: argparse.Namespace) -> int:
    """`fsdiff fuse`: fuse and super-resolve one pair of files, every pair of two folders or every row of a dataset,
    with one pipeline in each process (its share of the pairs when a launcher started several)."""
    processes = Processes.from_environment()
    device = resolve_device(processes.device(args.device))
    dtype = DTYPES[args.dtype] if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    jobs, outputs = fuse_jobs(args)
    jobs = pending_pairs(processes.share(jobs), outputs, args.overwrite)
    if not jobs:
        return EXIT_OK

    loading = time.perf_counter()
    pipe = load_pipeline(args.model, device, dtype, args.scheduler)
    steps = args.steps or pipe.default_num_inference_steps
    check_scheduler(pipe.scheduler, steps)
    pipe.check_tiling(args.tile_size, args.tile_overlap)
    pipe.set_progress_bar_config(disable=len(jobs) > 1 or None)  # the steps of a single pair; else pairs only
    if processes.rank == 0:
        shared = f"; {processes.count} processes share the {len(outputs)} pairs" if processes.count > 1 else ""
        report(
            f"model {args.model} on {device} ({str(dtype).removeprefix('torch.')}), {type(pipe.scheduler).__name__}, "
            f"{steps} step{'s' * (steps != 1)}{'' if args.steps else ' (the model default)'}; "
            f"loaded in {time.perf_counter() - loading:.1f} s{shared}"
        )
    output_size = None if args.size is None else args.size[::-1]
    scale = args.scale if args.size is None else None

    def fuse(stems: list[str], batch: list[dict[str, np.ndarray]]) -> list[PIL.Image.Image]:
        try:
            return pipe(
                infrared=[images["infrared"] for images in batch],
                visible=[images["visible"] for images in batch],
                scale=scale,
                output_size=output_size,
                num_inference_steps=steps,
                generator=[torch.Generator().manual_seed(args.seed) for _ in batch],  # each pair's noise as alone
                callback_on_step_end=StepReporter(", ".join(stems), steps),
                tile_size=args.tile_size,
                tile_overlap=args.tile_overlap,
            ).images
        except torch.cuda.OutOfMemoryError as error:
            smaller = "--scale, --size" + (", --batch-size" if len(batch) > 1 else "")
            raise ValueError(f"out of memory on {device}; fuse it smaller ({smaller}) or on the cpu") from error

    def save(job: FuseJob, fused: PIL.Image.Image, seconds: float) -> float:
        start = time.perf_counter()
        path = outputs[job.stem]
        save_image(fused, path, **OUTPUT_FORMATS[path.suffix.lower()])
        seconds += time.perf_counter() - start
        tqdm.write(f"{job.stem} -> {path} ({fused.width}x{fused.height}, {seconds:.2f} s)")
        return seconds

    times, failures = fuse_in_batches(jobs, fuse, save, args.batch_size, progress=processes.rank == 0)
    if len(jobs) > 1 or processes.count > 1:
        mean = f" in {sum(times.values()) / len(times):.2f} s per image" if times else ""
        print(f"{processes.label}fused {len(times)} of {len(jobs)} pairs into {args.out}{mean}")
    return finish(len(jobs), failures, processes.label)


def add_fuse_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fuse",
        help="fuse and super-resolve image pairs (two files, two folders or a dataset)",
        description=FUSE_DESCRIPTION,
        epilog=FUSE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = parser.add_argument_group("inputs and outputs")
    files.add_argument(
        "--infrared", metavar="PATH", help="infrared (or MRI) image, or a folder of them (low resolution)"
    )
    files.add_argument("--visible", metavar="PATH", help="visible (or CT / PET / SPECT) image, or a folder of them")
    files.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="output image (.png, .jpg, .tif) for one pair; output folder for folders and datasets",
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

    add_dataset_arguments(parser)

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

    scale_out = parser.add_argument_group("many pairs")
    scale_out.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        metavar="N",
        help="fuse up to N pairs of one size in one pipeline call (default: 1); each keeps its own noise, so a "
        "result equals the one-at-a-time one up to float rounding. Faster on a GPU with memory to spare",
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


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--dataset_*` options: a `datasets` dataset instead of `--infrared` / `--visible` (spelled like the
    training script's)."""
    dataset = parser.add_argument_group(
        "or a datasets dataset (instead of --infrared / --visible; needs the train extra)"
    )
    source = dataset.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset_name",
        metavar="NAME_OR_FOLDER",
        help="a Hub dataset, or a folder of images read with imagefolder (its metadata.jsonl naming the columns, "
        "e.g. infrared_file_name and visible_file_name)",
    )
    source.add_argument("--dataset_path", metavar="FOLDER", help="a folder written by Dataset(Dict).save_to_disk")
    dataset.add_argument("--dataset_config_name", metavar="NAME", help="the configuration of a Hub dataset")
    dataset.add_argument(
        "--split",
        default="train",
        help="the split to fuse (default: train, the only split of an imagefolder folder without split folders; a "
        "save_to_disk Dataset has none and is fused whole)",
    )
    dataset.add_argument("--infrared_column", default="infrared", metavar="COLUMN", help="default: infrared")
    dataset.add_argument("--visible_column", default="visible", metavar="COLUMN", help="default: visible")
    dataset.add_argument(
        "--name_column",
        metavar="COLUMN",
        help="the output file names, one unique plain name per row (default: the row index, 00000.png, 00001.png, ...)",
    )
