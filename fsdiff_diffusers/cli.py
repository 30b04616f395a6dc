# Copyright 2025 The FS-Diff Diffusers authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The `fsdiff` command: `fsdiff fuse` fuses and super-resolves pairs with an FS-Diff pipeline, `fsdiff example`
draws a synthetic pair, `fsdiff evaluate` scores fused images, `fsdiff baseline` makes "bicubic + fusion" results.

Each subcommand is a `run_*(args) -> int` function and an `add_*_parser(subparsers)` builder; [`main`] ties them
together. Folders are paired by file stem with [`fsdiff_diffusers.pairing.scan_pairs`]; a file that fails is
named on stderr, the others are still processed, and the exit status is 1 when any failed.
"""

import argparse
import csv
import json
import math
import os
import re
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import PIL.Image
import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from PIL.PngImagePlugin import PngInfo
from tqdm.auto import tqdm

from .example_pair import MIN_SIZE, example_pair
from .fusion import FUSION_METHODS
from .image_processor import load_image
from .metrics import HIGHER_IS_BETTER, METRICS, evaluate, metric_names
from .pairing import Pair, scan_pairs
from .pipelines.pipeline_fsdiff import FSDiffPipeline
from .protocol import bicubic_fusion_baseline, load_grey
from .weights import DEFAULT_MODEL, SHIPPED_MODELS

Result = TypeVar("Result")
Loader = Callable[[Path, str], np.ndarray]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

MAIN_DESCRIPTION = """\
FS-Diff: simultaneous multimodal image fusion and super-resolution.

Two registered images of one scene (infrared + visible, or MRI + CT / PET / SPECT) go in, one fused
image comes out. Folders are paired by file name: ir/05.png goes with vi/05.jpg."""

MAIN_EPILOG = """\
examples:
  fsdiff fuse --infrared ir.png --visible vi.png --scale 4 -o fused.png
  fsdiff fuse --infrared lr/ir --visible lr/vi -o results/fsdiff
  fsdiff evaluate --fused results/fsdiff --infrared hr/ir --visible hr/vi --csv scores.csv

Run 'fsdiff COMMAND --help' for the options of a command."""

EVALUATE_DESCRIPTION = """\
Score fused images against their two sources with the fusion metrics (EN, SD, SF, AG, MI, SCD, VIF,
Qabf, Q_ir, Q_vi, Nabf, SSIM, MS-SSIM, CC, PSNR). Q_ir and Q_vi are Qabf's two terms: how much of the
infrared's (first source's, MRI for medical pairs), resp. the visible's, own edges reach the fused image.

Images are paired by file stem across the three folders (fused/05.png, ir/05.png, vi/05.jpg) and
compared in the 0..255 range. A colour source next to a grey fused image is turned grey. Each image
must have the size of its sources: to score a super-resolved result, pass the high-resolution
sources (cropped the same way as the low-resolution inputs were made). Per-image scores go to
--csv / --json; the mean of every metric is printed at the end. The exit status is 1 when any image
could not be scored (it is named on stderr), 0 otherwise."""

EVALUATE_EPILOG = """\
examples:
  fsdiff evaluate --fused out/ --infrared data/ir --visible data/vi
  fsdiff evaluate --fused out/ --infrared data/ir --visible data/vi --metrics Qabf SCD VIF SSIM --csv scores.csv
  fsdiff evaluate --fused out/ --infrared data/ir --visible data/vi --convention cddfuse --json scores.json

conventions:
  vifb     VIFB's MATLAB definitions (default): MI in nats on min-max normalised images, SSIM with an
           11x11 Gaussian window, PSNR 20*log10(255 / sqrt(m)) as in VIFB's metricsPsnr.m
  cddfuse  the Python Evaluator of CDDFuse / DDFM (MI on rounded images, scikit-image SSIM, usual PSNR)"""

SCHEDULER_ALIASES = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "dpmsolver": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "pndm": "PNDMScheduler",
}
"""Short, case-insensitive names of `--scheduler`, next to the Diffusers class names."""

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

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

EXAMPLE_DESCRIPTION = """\
Write a synthetic infrared + visible pair of a made-up street scene, to try 'fsdiff fuse' without data.

The scene is drawn by fsdiff_diffusers.example_pair: it is NOT real data. Two people are hidden in the
visible view (one behind smoke, one in a building's shadow) and bright in the infrared view; the visible
view has the colour and texture. The images are registered, low resolution (160x120 unless --size
says otherwise), and written as DIR/infrared.png (grey) and DIR/visible.png (colour)."""

EXAMPLE_EPILOG = """\
examples:
  fsdiff example -o demo
  fsdiff fuse --infrared demo/infrared.png --visible demo/visible.png --scale 4 -o demo/fused.png"""

BASELINE_DESCRIPTION = """\
Make the "bicubic + fusion" baseline of joint fusion and super-resolution for every pair of two folders.

The images given are the LOW-resolution inputs: each is turned 8-bit grey (its luminance),
upsampled by --scale with PIL's bicubic filter, and the two are fused with a classical rule. The
result, grey and --scale times the input size, is written to --out as <name>.png. To measure the
baseline against high-resolution sources, downscale them first (top-left crop to a multiple of the
scale, then bicubic downscale) and run 'fsdiff evaluate' on the results.

methods:
  gff        guided-filter fusion (Li et al., 2013)
  laplacian  Laplacian pyramid, 4 detail bands, max-abs detail selection, averaged base
  mean       pixel-wise average
  max        pixel-wise maximum"""

BASELINE_EPILOG = """\
examples:
  fsdiff baseline --method gff --infrared lr/ir --visible lr/vi --scale 4 --out results/gff_x4
  fsdiff baseline --method mean --infrared lr/ir --visible lr/vi --scale 2.5 --out results/mean"""


# ----------------------------------------------------------------------------- shared by the subcommands
def report(message: str) -> None:
    """Print `message` to stderr without breaking a progress bar."""
    tqdm.write(message, file=sys.stderr)


def pair_folders(folders: Sequence[str], names: Sequence[str]) -> List[Pair]:
    """Pairs the images of `folders` by stem, reporting the files without partners on stderr."""
    matching = scan_pairs(*folders, names=names)
    unmatched = matching.describe_unmatched()
    if unmatched:
        report(f"warning: {unmatched}")
    return matching.pairs


def load_pair(pair: Pair, loader: Loader) -> Dict[str, np.ndarray]:
    """Loads every file of `pair` with `loader(path, name)` and checks they all have one size."""
    images = {name: loader(path, name) for name, path in pair.paths.items()}
    first = next(iter(images))
    height, width = images[first].shape[:2]
    for name, image in images.items():
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"the {name} image '{pair[name]}' is {image.shape[0]}x{image.shape[1]} but the {first} image "
                f"'{pair[first]}' is {height}x{width} (H x W); the images of one scene must have one size."
            )
    return images


def process_pairs(
    pairs: Sequence[Pair], function: Callable[[Pair], Result], description: str
) -> Tuple[Dict[str, Result], Dict[str, str]]:
    """Calls `function(pair)` on every pair with a progress bar; a `ValueError` or `OSError` fails that pair only.

    Returns:
        `(results, failures)`: stem -> result of the pairs that worked, stem -> error message of the others
        (each also printed on stderr as it happens).
    """
    results, failures = {}, {}
    for pair in tqdm(pairs, desc=description, unit="pair", disable=None, file=sys.stderr):
        try:
            results[pair.stem] = function(pair)
        except (OSError, ValueError) as error:
            failures[pair.stem] = str(error)
            report(f"error: {pair.stem}: {error}")
    return results, failures


def finish(total: int, failures: Dict[str, str]) -> int:
    """Prints how many pairs failed (if any) and returns the exit status."""
    if not failures:
        return EXIT_OK
    report(f"{len(failures)} of {total} pairs failed: {', '.join(failures)}")
    return EXIT_FAILED


def scale_factor(text: str) -> float:
    """argparse type of `--scale`: a number >= 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1; the scale is an upscaling factor such as 2, 4 or 2.5")
    return value


def image_size(text: str) -> Tuple[int, int]:
    """argparse type of `--size`: `WIDTHxHEIGHT` in pixels, e.g. `640x480`, returned as `(width, height)`."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in pixels written WIDTHxHEIGHT, such as 640x480")
    return int(width), int(height)


def positive_int(text: str) -> int:
    """argparse type of `--steps`: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def device_name(text: str) -> str:
    """argparse type of `--device`: auto, cpu, mps, cuda or cuda:N (availability is checked by [`resolve_device`])."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    return text


def metric_name(text: str) -> str:
    """argparse type of `--metrics`: a metric name in any case, returned in its canonical spelling."""
    try:
        return metric_names([text])[0]
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown metric {text!r}; choose from {', '.join(METRICS)}") from None


# ----------------------------------------------------------------------------- fsdiff fuse
def load_for_fusion(path: Path, name: str) -> np.ndarray:
    """An image file as float32 `(H, W, C)` in `[0, 1]`, `C` in {1, 3}, an input of [`FSDiffPipeline`]."""
    return load_image(path, name).permute(1, 2, 0).numpy()


def resolve_device(name: str) -> torch.device:
    """The torch device of `--device`: `auto` is CUDA, else MPS, else the CPU; a device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device {name} was asked for, but this PyTorch ({torch.__version__}) sees no CUDA GPU; use "
            "--device auto or cpu, or install a CUDA build of PyTorch."
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA GPUs (cuda:0, ...).")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: Apple's MPS backend is not available here; use --device auto or cpu.")
    return device


def load_pipeline(model: str, device: torch.device, dtype: torch.dtype) -> FSDiffPipeline:
    """Loads the pipeline of `--model` (a shipped model's name, a folder or a Hub id) onto `device` in `dtype`."""
    model = SHIPPED_MODELS.get(model, model)
    if not os.path.isfile(os.path.join(model, "model_index.json")):
        if os.path.abspath(model) in {os.path.abspath(path) for path in SHIPPED_MODELS.values()}:
            raise ValueError(
                f"a model shipped with fsdiff-diffusers is missing from this installation ('{model}' holds no "
                "model_index.json). Reinstall the package (pip install --force-reinstall fsdiff-diffusers), or pass "
                "--model with a folder written by FSDiffPipeline.save_pretrained or a Hub id."
            )
        if os.path.isdir(model):
            raise ValueError(
                f"the model folder '{model}' holds no model_index.json: pass a folder written by "
                "FSDiffPipeline.save_pretrained, or a Hub id such as org/name."
            )
    try:
        pipe = FSDiffPipeline.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load the model '{model}': {error}") from error
    return pipe.to(device)


def scheduler_class(name: str, scheduler: SchedulerMixin) -> type:
    """The scheduler class of `--scheduler`: an alias or a class name (any case) from `scheduler.compatibles`."""
    compatibles = {cls.__name__.lower(): cls for cls in scheduler.compatibles}
    wanted = SCHEDULER_ALIASES.get(name.lower(), name).lower()
    if wanted not in compatibles:
        raise ValueError(
            f"unknown scheduler '{name}'; use one of {', '.join(SCHEDULER_ALIASES)} or a class name compatible with "
            f"this model: {', '.join(sorted(cls.__name__ for cls in compatibles.values()))}."
        )
    return compatibles[wanted]


def check_scheduler(scheduler: SchedulerMixin, steps: int) -> None:
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


def fuse_jobs(args: argparse.Namespace) -> Tuple[List[Pair], Dict[str, Path]]:
    """The pairs of `--infrared` / `--visible` (two files or two folders) and the output file of each, by stem."""
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
        pairs = pair_folders([infrared, visible], ("infrared", "visible"))
        return pairs, {pair.stem: args.out / f"{pair.stem}.{args.format}" for pair in pairs}
    if args.out.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(
            f"-o '{args.out}' must be an image file ending in {', '.join(OUTPUT_FORMATS)} when fusing one pair."
        )
    pair = Pair(infrared.stem, {"infrared": infrared, "visible": visible})
    return [pair], {pair.stem: args.out}


def run_fuse(args: argparse.Namespace) -> int:
    """`fsdiff fuse`: fuse and super-resolve one pair of files, or every pair of two folders, with one pipeline."""
    device = resolve_device(args.device)
    dtype = DTYPES[args.dtype] if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    pairs, outputs = fuse_jobs(args)
    existing = [] if args.overwrite else [pair for pair in pairs if outputs[pair.stem].exists()]
    for pair in existing:
        report(f"skipped {pair.stem}: {outputs[pair.stem]} exists (pass --overwrite to replace it)")
    pairs = [pair for pair in pairs if pair not in existing]
    if not pairs:
        return EXIT_OK

    loading = time.perf_counter()
    pipe = load_pipeline(args.model, device, dtype)
    if args.scheduler:
        pipe.scheduler = scheduler_class(args.scheduler, pipe.scheduler).from_config(pipe.scheduler.config)
    check_scheduler(pipe.scheduler, args.steps)
    pipe.set_progress_bar_config(disable=len(pairs) > 1 or None)  # the steps of a single pair; else pairs only
    report(
        f"model {args.model} on {device} ({str(dtype).removeprefix('torch.')}), {type(pipe.scheduler).__name__}, "
        f"{args.steps} step{'s' * (args.steps != 1)}; loaded in {time.perf_counter() - loading:.1f} s"
    )
    output_size = None if args.size is None else args.size[::-1]
    scale = args.scale if args.size is None else None

    def fuse_pair(pair: Pair) -> float:
        start = time.perf_counter()
        images = load_pair(pair, load_for_fusion)
        try:
            fused = pipe(
                infrared=images["infrared"],
                visible=images["visible"],
                scale=scale,
                output_size=output_size,
                num_inference_steps=args.steps,
                generator=torch.Generator().manual_seed(args.seed),
            ).images[0]
        except torch.cuda.OutOfMemoryError as error:
            raise ValueError(f"out of memory on {device}; fuse it smaller (--scale, --size) or on the cpu") from error
        path = outputs[pair.stem]
        path.parent.mkdir(parents=True, exist_ok=True)
        fused.save(path, **OUTPUT_FORMATS[path.suffix.lower()])
        seconds = time.perf_counter() - start
        tqdm.write(f"{pair.stem}: {path} ({fused.width}x{fused.height}, {seconds:.2f} s)")
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

    size = parser.add_argument_group("output size (one of)").add_mutually_exclusive_group()
    size.add_argument(
        "--scale", type=scale_factor, default=4.0, metavar="S", help="upscaling factor, any number >= 1 (default: 4)"
    )
    size.add_argument("--size", type=image_size, metavar="WxH", help="output size in pixels, e.g. 640x480")

    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--steps", type=positive_int, default=10, metavar="N", help="denoising steps (default: 10)")
    sampling.add_argument(
        "--scheduler", metavar="NAME", help="sampler: ddpm, ddim, dpm++, unipc, euler, heun, pndm or a class name"
    )
    sampling.add_argument("--seed", type=int, default=0, help="seed of the initial noise of every image (default: 0)")

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


# ----------------------------------------------------------------------------- fsdiff example
SYNTHETIC_NOTE = "synthetic example scene drawn by fsdiff_diffusers.example_pair, not real data"


def run_example(args: argparse.Namespace) -> int:
    """`fsdiff example`: write the synthetic pair of [`example_pair`] as `infrared.png` and `visible.png`."""
    width, height = args.size
    infrared, visible = example_pair(width, height, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    note = PngInfo()
    note.add_text("Description", SYNTHETIC_NOTE)
    paths = {name: args.out / f"{name}.png" for name in ("infrared", "visible")}
    infrared.save(paths["infrared"], pnginfo=note)
    visible.save(paths["visible"], pnginfo=note)
    print(f"wrote a {SYNTHETIC_NOTE} ({width}x{height}): {paths['infrared']} (grey), {paths['visible']} (colour)")
    print(
        f"fuse it: fsdiff fuse --infrared {paths['infrared']} --visible {paths['visible']} -o {args.out / 'fused.png'}"
    )
    return EXIT_OK


def example_size(text: str) -> Tuple[int, int]:
    """argparse type of `fsdiff example --size`: an [`image_size`] at least [`MIN_SIZE`]."""
    width, height = image_size(text)
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise argparse.ArgumentTypeError(f"{text} is too small; the example is at least {MIN_SIZE[0]}x{MIN_SIZE[1]}")
    return width, height


def add_example_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "example",
        help="write a synthetic example pair (made up, not real data)",
        description=EXAMPLE_DESCRIPTION,
        epilog=EXAMPLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder to write infrared.png and visible.png into",
    )
    parser.add_argument(
        "--size", type=example_size, default=(160, 120), metavar="WxH", help="image size in pixels (default: 160x120)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the textures and the noise (default: 0)")
    parser.set_defaults(run=run_example)


# ----------------------------------------------------------------------------- fsdiff evaluate
def load_for_metrics(path: Path, name: str) -> np.ndarray:
    """An image file as float64 `(H, W, C)` in 0..255, the input of `fsdiff_diffusers.metrics`."""
    return (load_image(path, name) * 255).permute(1, 2, 0).double().numpy()


def write_csv(path: Path, names: Sequence[str], scores: Dict[str, Dict[str, float]]) -> None:
    """One row per image: its stem, then one column per metric."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", *names])
        writer.writerows([stem, *(row[name] for name in names)] for stem, row in scores.items())


def write_json(
    path: Path, convention: str, scores: Dict[str, Dict[str, float]], means: Dict[str, float], failures: Dict[str, str]
) -> None:
    """Per-image scores, their means and the failed images with their errors."""
    document = {"convention": convention, "images": scores, "mean": means, "failed": failures}
    Path(path).write_text(json.dumps(document, indent=2) + "\n")


def format_means(means: Dict[str, float], count: int) -> str:
    """The mean of every metric as an aligned text table."""
    lines = [f"mean over {count} image{'s' * (count != 1)}:", f"  {'metric':<8} {'mean':>12}  better"]
    lines += [
        f"  {name:<8} {value:>12.4f}  {'higher' if HIGHER_IS_BETTER[name] else 'lower'}"
        for name, value in means.items()
    ]
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """`fsdiff evaluate`: metrics of every fused image of a folder against its two sources."""
    names = metric_names(args.metrics)
    pairs = pair_folders([args.fused, args.infrared, args.visible], ("fused", "infrared", "visible"))

    def score(pair: Pair) -> Dict[str, float]:
        images = load_pair(pair, load_for_metrics)
        return evaluate(images["fused"], images["infrared"], images["visible"], names, args.convention)

    scores, failures = process_pairs(pairs, score, "evaluate")
    means = {name: float(np.mean([row[name] for row in scores.values()])) for name in names} if scores else {}
    if args.csv:
        write_csv(args.csv, names, scores)
    if args.json:
        write_json(args.json, args.convention, scores, means, failures)
    if means:
        print(format_means(means, len(scores)))
    return finish(len(pairs), failures)


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score fused images against their sources (Qabf, SSIM, ...)",
        description=EVALUATE_DESCRIPTION,
        epilog=EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fused", required=True, metavar="DIR", help="folder of the fused images")
    parser.add_argument("--infrared", required=True, metavar="DIR", help="folder of the first sources (infrared, MRI)")
    parser.add_argument(
        "--visible", required=True, metavar="DIR", help="folder of the second sources (visible, CT / PET / SPECT)"
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        type=metric_name,
        metavar="NAME",
        help=f"metrics to compute, any case (default: all of {' '.join(METRICS)})",
    )
    parser.add_argument(
        "--convention", choices=("vifb", "cddfuse"), default="vifb", help="metric definitions (default: vifb)"
    )
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row of scores per image to FILE")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write per-image scores, means and failures to FILE")
    parser.set_defaults(run=run_evaluate)


# ----------------------------------------------------------------------------- fsdiff baseline
def run_baseline(args: argparse.Namespace) -> int:
    """`fsdiff baseline`: upsample every LR pair bicubically by `--scale`, fuse it, write `<stem>.png`."""
    pairs = pair_folders([args.infrared, args.visible], ("infrared", "visible"))
    args.out.mkdir(parents=True, exist_ok=True)

    def fuse_pair(pair: Pair) -> Path:
        images = load_pair(pair, load_grey)
        fused = bicubic_fusion_baseline(images["infrared"], images["visible"], args.scale, args.method)
        path = args.out / f"{pair.stem}.png"
        PIL.Image.fromarray(fused).save(path)
        return path

    written, failures = process_pairs(pairs, fuse_pair, f"{args.method} x{args.scale:g}")
    print(f"wrote {len(written)} fused image{'s' * (len(written) != 1)} to {args.out}")
    return finish(len(pairs), failures)


def add_baseline_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="bicubic upsampling + a classical fusion rule (baseline)",
        description=BASELINE_DESCRIPTION,
        epilog=BASELINE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", choices=FUSION_METHODS, required=True, help="fusion rule")
    parser.add_argument(
        "--infrared", required=True, metavar="DIR", help="folder of the LR first sources (infrared, MRI)"
    )
    parser.add_argument(
        "--visible", required=True, metavar="DIR", help="folder of the LR second sources (visible, CT / PET / SPECT)"
    )
    parser.add_argument(
        "--scale", type=scale_factor, default=4.0, metavar="S", help="upscaling factor, any number >= 1 (default: 4)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write <name>.png into")
    parser.set_defaults(run=run_baseline)


# ----------------------------------------------------------------------------- fsdiff
def package_version() -> str:
    try:
        return version("fsdiff-diffusers")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The `fsdiff` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="fsdiff",
        description=MAIN_DESCRIPTION,
        epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_fuse_parser(subparsers)
    add_example_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_baseline_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs `fsdiff` with `argv` (default: the command line); returns the exit status.

    0: every pair was processed; 1: some pairs failed (each named on stderr); 2: bad arguments or folders.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError) as error:
        print(f"fsdiff: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
