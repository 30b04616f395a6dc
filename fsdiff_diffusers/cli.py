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
"""The `fsdiff` command: `fsdiff example` draws a synthetic pair, `fsdiff evaluate` scores fused images, `fsdiff
baseline` makes "bicubic + fusion" results.

Each subcommand is a `run_*(args) -> int` function and an `add_*_parser(subparsers)` builder; [`main`] ties them
together. Folders are paired by file stem with [`fsdiff_diffusers.pairing.scan_pairs`]; a file that fails is
named on stderr, the others are still processed, and the exit status is 1 when any failed.
"""

import argparse
import csv
import json
import math
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import PIL.Image
from PIL.PngImagePlugin import PngInfo
from tqdm.auto import tqdm

from .example_pair import MIN_SIZE, example_pair
from .fusion import FUSION_METHODS
from .image_processor import load_image
from .metrics import HIGHER_IS_BETTER, METRICS, evaluate, metric_names
from .pairing import Pair, scan_pairs
from .protocol import bicubic_fusion_baseline, load_grey

Result = TypeVar("Result")
Loader = Callable[[Path, str], np.ndarray]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

MAIN_DESCRIPTION = """\
FS-Diff: simultaneous multimodal image fusion and super-resolution.

Two registered images of one scene (infrared + visible, or MRI + CT / PET / SPECT) go in, one fused
image comes out. Folders are paired by file name: ir/05.png goes with vi/05.jpg."""

MAIN_EPILOG = """\
examples:
  fsdiff baseline --method laplacian --infrared lr/ir --visible lr/vi --scale 4 --out results/laplacian
  fsdiff evaluate --fused results/laplacian --infrared hr/ir --visible hr/vi --csv scores.csv

Run 'fsdiff COMMAND --help' for the options of a command."""

EVALUATE_DESCRIPTION = """\
Score fused images against their two sources with the fusion metrics (EN, SD, SF, AG, MI, SCD, VIF,
Qabf, Nabf, SSIM, MS-SSIM, CC, PSNR).

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
    """Calls `function(pair)` on every pair with a progress bar; a `ValueError` fails that pair only.

    Returns:
        `(results, failures)`: stem -> result of the pairs that worked, stem -> error message of the others
        (each also printed on stderr as it happens).
    """
    results, failures = {}, {}
    for pair in tqdm(pairs, desc=description, unit="pair", disable=None, file=sys.stderr):
        try:
            results[pair.stem] = function(pair)
        except ValueError as error:
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


def metric_name(text: str) -> str:
    """argparse type of `--metrics`: a metric name in any case, returned in its canonical spelling."""
    try:
        return metric_names([text])[0]
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown metric {text!r}; choose from {', '.join(METRICS)}") from None


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
        help="write a synthetic infrared + visible pair (a made-up scene, not real data) to try fusion on",
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
        help="score fused images against their sources (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, PSNR, ...)",
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
        help="upsample LR pairs bicubically and fuse them with a classical rule (gff, laplacian, mean, max)",
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
