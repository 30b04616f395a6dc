"""Fusion + super-resolution quality on the held-out test pairs: bicubic + classical fusion baselines (and an FS-Diff
pipeline, when given) at x2, x4 and x8, and HKDnet's published outputs against the same baselines.

Usage:
    python benchmarks/quality.py [--datasets TNO MSRS ...] [--scales 2 4 8] [--methods mean max laplacian gff]
                                 [--pipeline PATH [--steps N] [--scheduler CLASS]] [--limit N] [--no-write]

Protocol (`fsdiff_diffusers.protocol`): sources to 8-bit grey, top-left crop to a multiple of the scale (HR), PIL
bicubic downscale (LR); each method turns the LR pair into an HR-size image, rounded to 8 bits, scored with every
metric of `fsdiff_diffusers.metrics` (VIFB convention) against the HR sources. Writes the "quality" section of
RESULTS.md, a bar chart per scale and an image grid under benchmarks/figures/ (unless --no-write).
"""

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fsdiff_diffusers import metrics, protocol  # noqa: E402
from fsdiff_diffusers.fusion import FUSION_METHODS  # noqa: E402
from fsdiff_diffusers.pairing import Pair, scan_pairs  # noqa: E402
from results import machine_description, markdown_table, write_section  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
FIGURES_DIR = Path(__file__).with_name("figures")
HKDNET = "HKDnet_peer"
SCALES = (2, 4, 8)
HKDNET_SCALES = (2, 3, 4)
GRID_DATASETS = ("TNO", "MSRS", "Harvard_MRI_PET")
GRID_SCALE = 4
GRID_TILE = (128, 96)
COLUMNS = [*metrics.METRICS, "PSNR-MSE"]
"""Every metric (VIFB convention; "PSNR" in VIFB's form), then PSNR in the usual 10 log10(255^2 / MSE) form."""
NO_REFERENCE = ["EN", "SD", "SF", "AG"]
REFERENCE = ["MI", "SCD", "VIF", "Qabf", "SSIM", "CC", "PSNR-MSE"]
LEAD_METRICS = ["Qabf", "SCD"]
"""The metrics hardest to game (DESIGN.md): each table names the method with the highest value of each."""
DESIGN_COLUMNS = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR-MSE"]
DESIGN_TNO_X4 = {  # /work/shared/DESIGN.md, "Reference numbers: TNO test set, x4"
    "mean": [6.173, 25.30, 3.00, 1.36, 1.375, 1.462, 0.365, 0.133, 1.347, 16.28],
    "max": [6.819, 39.17, 4.57, 1.98, 2.110, 1.463, 0.435, 0.207, 1.279, 13.41],
    "laplacian": [6.734, 31.42, 5.73, 2.57, 1.136, 1.504, 0.417, 0.209, 1.306, 15.89],
}
TOLERANCE = 0.005  # the baselines should reproduce DESIGN's rows to 0.5 %

Method = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
"""`(infrared_lr, visible_lr, scale) -> fused` on uint8 `(h, w)` arrays; the result is uint8 at the scaled size."""
Scores = Dict[str, float]


# ----------------------------------------------------------------------------- data
def test_split() -> Dict[str, List[str]]:
    """Dataset folder -> stems of its test pairs, from `splits.json` (infrared-visible, then medical)."""
    splits = json.loads((DATA_DIR / "splits.json").read_text())
    return {
        dataset: [Path(name).stem for name in names]
        for group in splits.values()
        for dataset, names in group["test"].items()
    }


def source_folders(dataset: str) -> Tuple[Path, Path]:
    """The two modality folders of a dataset: ir / vi, or mri / (ct | pet | spect)."""
    root = DATA_DIR / dataset
    if (root / "ir").is_dir():
        return root / "ir", root / "vi"
    (other,) = [path for path in sorted(root.iterdir()) if path.is_dir() and path.name != "mri"]
    return root / "mri", other


def test_pairs(dataset: str, stems: Sequence[str], limit: Optional[int]) -> List[Pair]:
    """The test pairs of `dataset` (at most `limit`), matched by stem."""
    pairs = [pair for pair in scan_pairs(*source_folders(dataset)).pairs if pair.stem in set(stems)]
    if len(pairs) != len(stems):
        raise FileNotFoundError(f"{dataset}: {len(stems)} test pairs in splits.json but {len(pairs)} found")
    return pairs[:limit]


# ----------------------------------------------------------------------------- methods and scoring
def baseline_name(method: str) -> str:
    return f"bicubic + {method}"


def fsdiff_method(path: str, steps: int, scheduler: Optional[str]) -> Method:
    """Fusion of an LR pair with a saved `FSDiffPipeline` (seed 0)."""
    import diffusers

    from fsdiff_diffusers import FSDiffPipeline

    pipe = FSDiffPipeline.from_pretrained(path)
    if scheduler:
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)

    def run(infrared_lr: np.ndarray, visible_lr: np.ndarray, scale: float) -> np.ndarray:
        generator = torch.Generator().manual_seed(0)
        output = pipe(
            infrared_lr, visible_lr, scale=scale, num_inference_steps=steps, generator=generator, output_type="np"
        )
        return protocol.to_uint8(output.images[0, ..., 0])

    return run


def build_methods(args: argparse.Namespace) -> Dict[str, Method]:
    methods = {baseline_name(name): partial(protocol.bicubic_fusion_baseline, method=name) for name in args.methods}
    if args.pipeline:
        methods[f"FS-Diff ({args.steps} steps)"] = fsdiff_method(args.pipeline, args.steps, args.scheduler)
    return methods


def score(fused: np.ndarray, infrared: np.ndarray, visible: np.ndarray, names: Sequence[str] = COLUMNS) -> Scores:
    """`metrics.evaluate` (VIFB convention) plus PSNR in the MSE form, for the `names` out of `COLUMNS`."""
    scores = metrics.evaluate(fused, infrared, visible, [name for name in names if name in metrics.METRICS])
    if "PSNR-MSE" in names:
        scores["PSNR-MSE"] = metrics.psnr(fused, infrared, visible, form="mse")
    return scores


def mean_scores(rows: Sequence[Scores]) -> Scores:
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}


# ----------------------------------------------------------------------------- the protocol on the test split
def run_protocol(
    datasets: Dict[str, List[Pair]], scales: Sequence[int], methods: Dict[str, Method]
) -> Tuple[Dict[Tuple[str, int, str], Scores], Dict[Tuple[str, str], Dict[str, np.ndarray]]]:
    """Every method on every test pair at every scale.

    Returns:
        `(means, grid)`: (dataset, scale, method) -> mean scores; (dataset, stem) -> images of the grid pairs at
        `GRID_SCALE` (the HR sources and each method's output).
    """
    rows, grid = defaultdict(list), {}
    for dataset, pairs in datasets.items():
        for pair in tqdm(pairs, desc=dataset, unit="pair", file=sys.stderr):
            infrared, visible = (protocol.load_grey(path, name) for name, path in pair.paths.items())
            for scale in scales:
                example = protocol.make_pair(infrared, visible, scale)
                outputs = {
                    name: method(example.infrared_lr, example.visible_lr, scale) for name, method in methods.items()
                }
                for name, fused in outputs.items():
                    rows[dataset, scale, name].append(score(fused, example.infrared, example.visible))
                if scale == GRID_SCALE and dataset in GRID_DATASETS and pair is pairs[0]:
                    grid[dataset, pair.stem] = {"infrared": example.infrared, "visible": example.visible, **outputs}
    return {key: mean_scores(values) for key, values in rows.items()}, grid


# ----------------------------------------------------------------------------- HKDnet's outputs
def run_hkdnet(methods: Dict[str, Method], limit: Optional[int]) -> Dict[Tuple[int, str, str], Scores]:
    """HKDnet's outputs and our methods on HKDnet's LR inputs, scored without HR ground truth.

    Returns:
        (scale, method, reference) -> mean scores, `reference` being "same" (the LR inputs of that scale, upsampled
        bicubically: what every method was given) or "x2" (the x2 LR inputs resized bicubically to the output size,
        the sharpest sources that ship; only for scales above 2).
    """
    root = DATA_DIR / HKDNET
    rows = defaultdict(list)
    for scale in HKDNET_SCALES:
        folders = [root / f"lr_{scale}x" / "ir", root / f"lr_{scale}x" / "vi", root / f"out_{scale}x"]
        pairs = scan_pairs(*folders, names=("infrared", "visible", "HKDnet")).pairs[:limit]
        for pair in tqdm(pairs, desc=f"HKDnet x{scale}", unit="pair", file=sys.stderr):
            images = {name: protocol.load_grey(path, name) for name, path in pair.paths.items()}
            outputs = {"HKDnet": images["HKDnet"]}
            outputs.update(
                {name: method(images["infrared"], images["visible"], scale) for name, method in methods.items()}
            )
            references = {"same": [protocol.upscale(images[name], scale) for name in ("infrared", "visible")]}
            if scale > 2:
                sharpest = [root / "lr_2x" / name / pair["infrared"].name for name in ("ir", "vi")]
                size = images["HKDnet"].shape
                references["x2"] = [protocol.bicubic_resize(protocol.load_grey(path), size) for path in sharpest]
            for name, fused in outputs.items():
                for reference, sources in references.items():
                    rows[scale, name, reference].append(score(fused, *sources, names=NO_REFERENCE + REFERENCE))
    return {key: mean_scores(values) for key, values in rows.items()}


# ----------------------------------------------------------------------------- figures
def bar_charts(means: Dict[Tuple[str, int, str], Scores], scales: Sequence[int]) -> List[Path]:
    """One PNG per scale: a panel per DESIGN metric, a group of bars (one per method) per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(key[0] for key in means))
    methods = list(dict.fromkeys(key[2] for key in means))
    paths = []
    for scale in scales:
        figure, axes = plt.subplots(2, 5, figsize=(15, 5.5))
        width = 0.8 / len(methods)
        for axis, metric, title in zip(axes.flat, DESIGN_COLUMNS, labels(DESIGN_COLUMNS)):
            for index, method in enumerate(methods):
                values = [means[dataset, scale, method][metric] for dataset in datasets]
                axis.bar(np.arange(len(datasets)) + index * width, values, width, label=method)
            axis.set_title(title)
            axis.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2)
            axis.set_xticklabels([dataset.replace("Harvard_", "") for dataset in datasets], rotation=30, fontsize=7)
        figure.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper right", ncol=len(methods), fontsize=8)
        figure.suptitle(f"x{scale}: mean over the test pairs of each dataset (VIFB convention)", x=0.01, ha="left")
        figure.tight_layout(rect=(0, 0, 1, 0.96))
        paths.append(FIGURES_DIR / f"quality_x{scale}.png")
        figure.savefig(paths[-1], dpi=60)
        plt.close(figure)
    return paths


def tile(image: np.ndarray, label: str) -> PIL.Image.Image:
    """`image` shrunk to fit `GRID_TILE`, centred on black, with `label` above it."""
    width, height = GRID_TILE
    picture = PIL.Image.fromarray(image)
    picture.thumbnail((width, height), PIL.Image.Resampling.LANCZOS)
    canvas = PIL.Image.new("L", (width, height + 14))
    canvas.paste(picture, ((width - picture.width) // 2, 14 + (height - picture.height) // 2))
    PIL.ImageDraw.Draw(canvas).text((2, 1), label, fill=255)
    return canvas


def grid_labels(dataset: str, stem: str, names: Sequence[str]) -> List[str]:
    """Labels of a grid row: the pair and its two modality folders, then the methods (shortened)."""
    first, second = (folder.name for folder in source_folders(dataset))
    pair = f"{dataset.replace('Harvard_', '')} {stem}"
    return [f"{pair} {first}", second, *(name.replace("bicubic + ", "bic+") for name in names[2:])]


def image_grid(grid: Dict[Tuple[str, str], Dict[str, np.ndarray]]) -> Path:
    """One row per grid pair: its HR sources, then every method's x4 output."""
    rows = [
        [tile(image, label) for image, label in zip(images.values(), grid_labels(dataset, stem, list(images)))]
        for (dataset, stem), images in grid.items()
    ]
    width, height = rows[0][0].size
    canvas = PIL.Image.new("L", (width * max(len(row) for row in rows), height * len(rows)))
    for row_index, row in enumerate(rows):
        for column, picture in enumerate(row):
            canvas.paste(picture, (column * width, row_index * height))
    path = FIGURES_DIR / f"quality_grid_x{GRID_SCALE}.png"
    canvas.save(path, optimize=True)
    return path


# ----------------------------------------------------------------------------- RESULTS.md
def cells(scores: Scores, names: Sequence[str]) -> List[str]:
    return [f"{scores[name]:.4g}" for name in names]


def labels(names: Sequence[str]) -> List[str]:
    """Column headers: the metric names, with the two PSNR forms spelled out."""
    return [{"PSNR": "PSNR (VIFB)", "PSNR-MSE": "PSNR (MSE)"}.get(name, name) for name in names]


def leaders(scores: Dict[str, Scores]) -> str:
    """The method with the highest value of each of `LEAD_METRICS`, out of `scores` (method -> scores)."""
    best = {name: max(scores, key=lambda method: scores[method][name]) for name in LEAD_METRICS}
    return ", ".join(f"{name} {method} ({scores[method][name]:.4g})" for name, method in best.items())


def dataset_tables(means, pair_counts: Dict[str, int], scales: Sequence[int], methods: Sequence[str]) -> str:
    headers = ["scale", "method", *labels(COLUMNS)]
    parts = []
    for dataset, count in pair_counts.items():
        rows = [
            [f"x{scale}", method, *cells(means[dataset, scale, method], COLUMNS)]
            for scale in scales
            for method in methods
        ]
        best = [f"x{scale}: {leaders({m: means[dataset, scale, m] for m in methods})}" for scale in scales]
        parts.append(
            f"### {dataset} ({count} test pair{'s' * (count != 1)})\n\n{markdown_table(headers, rows)}\n\n"
            f"Highest {' / '.join(LEAD_METRICS)}: " + "; ".join(best) + "."
        )
    return "\n\n".join(parts)


def reference_check(means) -> str:
    """TNO x4 baseline rows against DESIGN.md's, cell by cell (ours, then the relative difference)."""
    rows, misses = [], []
    for method, reference in DESIGN_TNO_X4.items():
        key = ("TNO", 4, baseline_name(method))
        if key not in means:
            continue
        ours = [means[key][name] for name in DESIGN_COLUMNS]
        differences = [value / expected - 1 for value, expected in zip(ours, reference)]
        rows.append([method] + [f"{value:.4g} ({100 * d:+.1f} %)" for value, d in zip(ours, differences)])
        worst = max(abs(d) for d in differences)
        if worst > TOLERANCE:
            misses.append(f"{method} (up to {100 * worst:.1f} %)")
    if not rows:
        return ""
    verdict = "all cells within 0.5 %" if not misses else "outside 0.5 %: " + ", ".join(misses)
    return (
        "### TNO x4 against DESIGN.md's reference rows\n\nOur value (relative difference to the DESIGN table); "
        f"{verdict}.\n\n"
        + markdown_table(["method", *labels(DESIGN_COLUMNS)], rows)
        + ("\n\n" + LAPLACIAN_NOTE if any(m.startswith("laplacian") for m in misses) else "")
    )


LAPLACIAN_NOTE = """\
The Laplacian row differs because of the border rule of the pyramid's EXPAND step. The reference pyramid
mirrors with the edge sample repeated (half-sample symmetric: `d c b a | a b c d`, `scipy.ndimage` mode
"reflect", numpy "symmetric"); `fsdiff_diffusers.fusion.pyramid` mirrors without repeating it (`c b | a b c`,
torch "reflect", OpenCV's default). A numpy re-implementation with symmetric borders reproduces every cell of
the DESIGN row within 0.1 %; symmetric borders in REDUCE alone change nothing (< 0.2 %), in EXPAND alone they
give the full match. Other variants tried, all further off: 3 or 5 levels, bilinear EXPAND, DoG bands from the
undecimated blur (scikit-image style), fusing on unclamped 0..255 floats, OpenCV pyrDown / pyrUp in float32
and in saturating uint8."""


def hkdnet_table(results, methods: Sequence[str], scale: int, reference: str, names: Sequence[str]) -> str:
    """One scale and reference of `run_hkdnet`'s results: a row per method, then the leaders."""
    scores = {method: results[scale, method, reference] for method in ["HKDnet", *methods]}
    rows = [[method, *cells(values, names)] for method, values in scores.items()]
    title = f"x{scale} LR inputs upsampled" if reference == "same" else "x2 LR inputs resized to the output size"
    return (
        f"**x{scale}**, against the {title}\n\n{markdown_table(['method', *labels(names)], rows)}\n\n"
        f"Highest {' / '.join(LEAD_METRICS)}: {leaders(scores)}."
    )


def hkdnet_tables(results, methods: Sequence[str]) -> str:
    tables = [hkdnet_table(results, methods, scale, "same", NO_REFERENCE + REFERENCE) for scale in HKDNET_SCALES]
    tables += [hkdnet_table(results, methods, scale, "x2", REFERENCE) for scale in HKDNET_SCALES[1:]]
    return "\n\n".join(tables)


HKDNET_TEXT = """\
### HKDnet (joint fusion + SR network) on its own LR inputs

`../shared/data/HKDnet_peer` ships HKDnet's LR inputs (`lr_{2x,3x,4x}/{ir,vi}`, 6 pairs) and its fused,
super-resolved outputs (`out_{2x,3x,4x}`), but no HR ground truth, so the protocol above cannot be applied.
How we compare: our baselines are run on exactly the same LR inputs (8-bit grey, PIL bicubic upsampling by the
same scale, so every output has HKDnet's output size), and every output is scored with
- the no-reference metrics EN, SD, SF, AG: they need no ground truth, but reward noise and invented texture
  as much as real detail;
- the reference metrics against the bicubic-upsampled LR inputs of the same scale: the sources every method
  was given. They measure how faithfully each output keeps both inputs, not how close it is to the unknown HR
  scene, and they favour the bicubic baselines, which are built from exactly these images; a network that
  restores true detail is *penalised* by them;
- for x3 and x4, the same reference metrics against the x2 LR inputs resized to the output size: the
  sharpest versions of the scene that ship. They are still not HR, but they are independent of the x3 / x4
  inputs, so detail a method restores that is really in the scene raises them rather than lowering them.
Read the no-reference columns and the x2-referenced tables together; neither alone says which is better."""


def section(args, methods, means, pair_counts, hkdnet, figures, seconds) -> str:
    load = os.getloadavg()[0]
    parts = [
        "## Fusion + super-resolution quality (`quality.py`)",
        f"Command: `python benchmarks/{Path(__file__).name}{' ' + ' '.join(args.argv) if args.argv else ''}` "
        f"({seconds / 60:.1f} min).",
        f"Machine: {machine_description()}. 1-minute load average at the end: {load:.1f}.",
        "Protocol (`fsdiff_diffusers.protocol`, DESIGN.md): the TEST pairs of `../shared/data/splits.json`; both "
        "sources to 8-bit grey (PIL `convert('L')`, so pseudo-colour PET / SPECT become their luminance); top-left "
        'crop to a multiple of the scale (HR); LR = PIL bicubic downscale; "bicubic + X" = both LR sources '
        "upsampled with PIL bicubic, fused with `fsdiff_diffusers.fusion.fuse(method=X)` and rounded to 8 bits. "
        "Metrics of the HR-size output against the HR sources, mean over the pairs, all in the VIFB convention "
        '(`metrics.evaluate`); PSNR is given in both forms: "PSNR (VIFB)" is VIFB\'s `metricsPsnr.m` '
        '(20 log10(255 / sqrt(m)), m a size-dependent RMSE mean: not comparable to the usual PSNR), "PSNR (MSE)" '
        "the usual 10 log10(255^2 / MSE) with MSE the mean over both sources (the form of DESIGN.md's tables). "
        'Nabf is the only lower-is-better column. Lead with Qabf and SCD (DESIGN.md, "How to read them").',
        reference_check(means),
        dataset_tables(means, pair_counts, args.scales, methods),
        "Figures: " + ", ".join(f"[{path.name}](figures/{path.name})" for path in figures) + "." if figures else "",
    ]
    if hkdnet:
        parts += [HKDNET_TEXT, hkdnet_tables(hkdnet, methods)]
    return "\n\n".join(part for part in parts if part)


# ----------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    datasets = [*test_split(), HKDNET]
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=datasets,
        default=datasets,
        metavar="NAME",
        help=f"default: {' '.join(datasets)}",
    )
    parser.add_argument("--scales", nargs="+", type=int, default=list(SCALES), help="default: 2 4 8")
    parser.add_argument("--methods", nargs="+", choices=FUSION_METHODS, default=["mean", "max", "laplacian", "gff"])
    parser.add_argument("--pipeline", help="folder (or Hub id) of a saved FSDiffPipeline to add as a method")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps of --pipeline (default: 10)")
    parser.add_argument("--scheduler", help="diffusers scheduler class for --pipeline, e.g. DDIMScheduler")
    parser.add_argument("--limit", type=int, help="at most this many pairs per dataset (quick checks)")
    parser.add_argument("--no-write", action="store_true", help="print only: leave RESULTS.md and figures/ alone")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    methods = build_methods(args)
    split = test_split()
    datasets = {name: test_pairs(name, split[name], args.limit) for name in args.datasets if name != HKDNET}
    means, grid = run_protocol(datasets, args.scales, methods) if datasets else ({}, {})
    hkdnet = run_hkdnet(methods, args.limit) if HKDNET in args.datasets else {}
    for key, scores in {**means, **hkdnet}.items():
        print(*key, " ".join(f"{name}={value:.4g}" for name, value in scores.items()))
    if args.no_write:
        return
    FIGURES_DIR.mkdir(exist_ok=True)
    figures = (bar_charts(means, args.scales) if means else []) + ([image_grid(grid)] if grid else [])
    pair_counts = {name: len(pairs) for name, pairs in datasets.items()}
    seconds = time.perf_counter() - start
    write_section("quality", section(args, list(methods), means, pair_counts, hkdnet, figures, seconds))


if __name__ == "__main__":
    main()
