"""`fsdiff evaluate`: score every fused image of a folder against its two sources with the fusion metrics."""

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..image_processor import load_image
from ..metrics import HIGHER_IS_BETTER, METRICS, evaluate, metric_names
from ..pairing import Pair
from .common import finish, load_pair, pair_folders, process_pairs
from .outputs import check_output_file, check_spares_inputs, write_atomically

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

def metric_name(text: str) -> str:
    """argparse type of `--metrics`: a metric name in any case, returned in its canonical spelling."""
    try:
        return metric_names([text])[0]
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown metric {text!r}; choose from {', '.join(METRICS)}") from None

def load_for_metrics(path: Path, name: str) -> np.ndarray:
    """An image file as float64 `(H, W, C)` in 0..255, the input of `fsdiff_diffusers.metrics`."""
    return (load_image(path, name) * 255).permute(1, 2, 0).double().numpy()


def write_csv(path: Path, names: Sequence[str], scores: dict[str, dict[str, float]]) -> None:
    """One row per image: its stem, then one column per metric (written under a temporary name, then renamed)."""

    def save(temporary: Path) -> None:
        with open(temporary, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["name", *names])
            writer.writerows([stem, *(row[name] for name in names)] for stem, row in scores.items())

    write_atomically(path, save)


def write_json(
    path: Path, convention: str, scores: dict[str, dict[str, float]], means: dict[str, float], failures: dict[str, str]
) -> None:
    """Per-image scores, their means and the failed images with their errors (written atomically)."""
    document = {"convention": convention, "images": scores, "mean": means, "failed": failures}
    write_atomically(path, lambda temporary: temporary.write_text(json.dumps(document, indent=2) + "\n"))


def format_means(means: dict[str, float], count: int) -> str:
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
    inputs = [Path(args.fused), Path(args.infrared), Path(args.visible)]
    for argument, path in (("--csv", args.csv), ("--json", args.json)):
        if path is not None:  # checked before any scoring, so that a bad path loses no scores
            check_spares_inputs(argument, path, inputs, folder=False)
            check_output_file(argument, path)
    pairs = pair_folders(inputs, ("fused", "infrared", "visible"))

    def score(pair: Pair) -> dict[str, float]:
        images = load_pair(pair, load_for_metrics)
        try:
            return evaluate(images["fused"], images["infrared"], images["visible"], names, args.convention)
        except ValueError as error:
            too_small = str(error).split(" needs images of at least")[0]
            if too_small not in names:
                raise
            others = " ".join(name for name in names if name != too_small)
            raise ValueError(f"{error}; score small images without it: --metrics {others}") from error

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
