"""The report of `quality.py`: its section of RESULTS.md (tables, target checks, the reference check against
DESIGN.md, the HKDnet comparison) and the --json summary."""

import argparse
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

import results
from quality_data import HKDNET
from quality_plan import FSDiffPlan
from quality_runs import GRID_SCALE, HKDNET_SCALES, ProtocolResults
from quality_scores import (
    COLUMNS,
    DESIGN_COLUMNS,
    EDGE_METRICS,
    LEAD_METRICS,
    NO_REFERENCE,
    REFERENCE,
    TARGET_CASE,
    TARGET_METRICS,
    Scores,
    TargetCheck,
    baseline_name,
    fsdiff_name,
    is_fsdiff,
    labels,
    short,
)
from results import machine_description, markdown_table

DESIGN_TNO_X4 = {  # /work/shared/DESIGN.md, "Reference numbers: TNO test set, x4"
    "mean": [6.173, 25.30, 3.00, 1.36, 1.375, 1.462, 0.365, 0.133, 1.347, 16.28],
    "max": [6.819, 39.17, 4.57, 1.98, 2.110, 1.463, 0.435, 0.207, 1.279, 13.41],
    "laplacian": [6.734, 31.42, 5.73, 2.57, 1.136, 1.504, 0.417, 0.209, 1.306, 15.89],
}
TOLERANCE = 0.005  # the baselines should reproduce DESIGN's rows to 0.5 %


def cells(scores: Scores, names: Sequence[str]) -> list[str]:
    return [f"{scores[name]:.4g}" for name in names]


def leaders(scores: dict[str, Scores]) -> str:
    """The method with the highest value of each of `LEAD_METRICS`, out of `scores` (method -> scores)."""
    best = {name: max(scores, key=lambda method: scores[method][name]) for name in LEAD_METRICS}
    return ", ".join(f"{name} {method} ({scores[method][name]:.4g})" for name, method in best.items())


def versus(value: float, best: tuple[str, float], bold: bool) -> str:
    """A target table cell: "FS-Diff's value vs the best baseline's (that baseline)", FS-Diff's in bold if `bold`."""
    method, reference = best
    return f"{'**' * bold}{value:.4g}{'**' * bold} vs {reference:.4g} ({short(method)})"


def target_table(checks: dict[tuple[str, int], TargetCheck], dataset: str, scales: Sequence[int]) -> str:
    """FS-Diff against the best baseline of each target metric and of `EDGE_METRICS`, a row per scale of `dataset`
    ("" without FS-Diff)."""
    rows = [
        [f"x{scale}", f"{len(check.wins)} / {len(check.best)}"]
        + [versus(check.values[name], best, name in check.wins) for name, best in check.best.items()]
        + [versus(check.values[name], best, name in check.matched) for name, best in check.edges.items()]
        + ["yes" if check.edges_matched else "no"]
        for scale in scales
        if (check := checks.get((dataset, scale)))
    ]
    if not rows:
        return ""
    edges = " and ".join(EDGE_METRICS)
    table = markdown_table(["scale", "wins", *TARGET_METRICS, *EDGE_METRICS, f"{edges} at least best"], rows)
    return (
        f"FS-Diff against the best baseline of each metric (bold: FS-Diff is better; for {edges}, which are not "
        "among the wins, at least as good):\n\n" + table
    )


def target_line(checks: dict[tuple[str, int], TargetCheck]) -> str:
    """The issue's target, on `TARGET_CASE`, as one line with the numbers ("" when it was not run)."""
    dataset, scale = TARGET_CASE
    if TARGET_CASE not in checks:
        return ""
    check = checks[TARGET_CASE]
    return (
        f"**Target check ({dataset} x{scale}: FS-Diff beats the best baseline on at least {check.required} of "
        f"{', '.join(check.best)}): {check.summary()}.** Per metric (FS-Diff vs the best baseline): "
        f"{check.details()}. **{check.edge_summary()}.**"
    )


def dataset_tables(
    measured: ProtocolResults,
    pair_counts: dict[str, int],
    scales: Sequence[int],
    grids: dict[str, tuple[Path, str]],
    plan: FSDiffPlan | None = None,
    method: str = "FS-Diff",
) -> str:
    """A table per dataset (a row per scale and method), what its rows are, its target check and its image grid."""
    headers = ["scale", "method", *labels(COLUMNS), "s/image"]
    checks = measured.target_checks(scales)
    parts = []
    for dataset, count in pair_counts.items():
        methods = measured.methods(dataset)
        rows = [
            [f"x{scale}", method, *cells(measured.means[dataset, scale, method], COLUMNS)]
            + [f"{measured.seconds[dataset, scale, method]:.3g}"]
            for scale in scales
            for method in methods
        ]
        best = [f"x{scale}: {leaders(measured.scores(dataset, scale))}" for scale in scales]
        rows_text = (plan or FSDiffPlan()).rows_text(dataset, method)
        parts.append(
            f"### {dataset} ({count} test pair{'s' * (count != 1)})\n\n"
            + (f'{rows_text} The rows "bicubic + X" are the baselines.\n\n' if rows_text else "")
            + f"{markdown_table(headers, rows)}\n\nHighest {' / '.join(LEAD_METRICS)}: "
            + "; ".join(best)
            + "."
        )
        parts.append(target_table(checks, dataset, scales))
        if dataset in grids:
            path, baseline = grids[dataset]
            parts.append(
                f"x{GRID_SCALE}, first {len(measured.grid[dataset])} test pair(s): LR inputs (nearest-neighbour "
                f"upsampled), the best baseline ({baseline}: best on the most of the {len(TARGET_METRICS)} target "
                f"metrics at x{GRID_SCALE}){', FS-Diff' if any(map(is_fsdiff, methods)) else ''}.\n\n"
                f"![{dataset} x{GRID_SCALE}]({path})"
            )
    return "\n\n".join(part for part in parts if part)


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


def hkdnet_rows_text(methods: Sequence[str], plan: FSDiffPlan, method: str) -> str:
    """What the rows of the HKDnet tables are: HKDnet's outputs, our baselines, FS-Diff (which model) or why not."""
    baselines = ", ".join(f'"{name}"' for name in methods if not is_fsdiff(name))
    text = f'Rows: "HKDnet" is HKDnet\'s published outputs; {baselines} are our bicubic baselines'
    if method in methods:
        return text + f'; the rows "{method}" are FS-Diff: {plan.model_of(HKDNET).label}, on the same LR inputs.'
    reason = plan.baselines_only.get(HKDNET) if plan.models else "run with `--pipeline default` to add it"
    return text + f". No FS-Diff rows: {reason}."


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


def pipeline_text(args: argparse.Namespace, plan: FSDiffPlan) -> str:
    """Which FS-Diff model ran on which datasets, and how ("" without `--pipeline`)."""
    if not args.pipeline:
        return ""
    method = fsdiff_name(args.steps, args.scheduler)
    ran = [f"{model.label} on {', '.join(model.datasets)}" for model in plan.models if model.runs()]
    lines = [
        f'FS-Diff (the method "{method}" of the tables and charts): {args.steps} steps of '
        f"{args.scheduler or 'its own scheduler'}, seed 0, {args.dtype} on {args.device}, "
        f"{torch.get_num_threads()} threads. "
        + (
            "`--pipeline default`: each dataset with the shipped model of its modality, under the one method name. "
            if args.pipeline == "default"
            else ""
        )
        + (f"Which model ran where: {'; '.join(ran)}." if ran else "It ran on no dataset.")
    ]
    reasons = defaultdict(list)
    for dataset, reason in plan.baselines_only.items():
        reasons[reason].append(dataset)
    lines += [f"Baselines only on {', '.join(datasets)}: {reason}." for reason, datasets in reasons.items()]
    lines.append(
        "s/image: wall time of one method call per pair (FS-Diff: the whole pipeline call, encoder included; "
        "the baselines: upsampling and fusion), mean over the pairs; metric computation not included."
    )
    return " ".join(lines)


def section(
    args, measured: ProtocolResults, pair_counts, hkdnet, hkdnet_methods, figures, grids, seconds, plan: FSDiffPlan
) -> str:
    load = os.getloadavg()[0]
    parts = [
        "## Fusion + super-resolution quality (`quality.py`)",
        f"Command: `python benchmarks/quality.py{' ' + ' '.join(args.argv) if args.argv else ''}` "
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
        "Q_ir / Q_vi are Qabf's two per-source terms (`metrics.edge_transfer`): how much of the infrared's (MRI's), "
        "resp. the visible's (CT / PET / SPECT's), own edges reach the output. "
        'Nabf is the only lower-is-better column. Lead with Qabf and SCD (DESIGN.md, "How to read them").'
        + (
            f" Sources centre-cropped to {args.crop} x {args.crop} first (a quick check, not the protocol)."
            if args.crop
            else ""
        ),
        pipeline_text(args, plan),
        target_line(measured.target_checks(args.scales)),
        reference_check(measured.means) if not (args.crop or args.limit) else "",
        dataset_tables(measured, pair_counts, args.scales, grids, plan, fsdiff_name(args.steps, args.scheduler)),
        "Figures: " + ", ".join(f"[{path.name}]({path})" for path in figures) + "." if figures else "",
    ]
    if hkdnet:
        rows = hkdnet_rows_text(hkdnet_methods, plan, fsdiff_name(args.steps, args.scheduler))
        parts += [HKDNET_TEXT, rows, hkdnet_tables(hkdnet, hkdnet_methods)]
    return "\n\n".join(part for part in parts if part)


def write_json(path: Path, split: str, measured: ProtocolResults) -> None:
    """The mean scores (`dataset -> scale -> method -> metric -> value`) and the wins of the target checks."""
    means: dict[str, dict[str, dict[str, Scores]]] = defaultdict(lambda: defaultdict(dict))
    for (dataset, scale, method), scores in measured.means.items():
        means[dataset][str(scale)][method] = scores
    checks = {
        f"{dataset} x{scale}": {"method": check.method, "summary": check.summary(), "edges": check.edge_summary()}
        for (dataset, scale), check in measured.target_checks(sorted({key[1] for key in measured.means})).items()
    }
    path.write_text(json.dumps({"split": split, "means": means, "target_checks": checks}, indent=2) + "\n")


def write_results_section(name: str, body: str, path: Path) -> None:
    """`results.write_section(name, body)` into the file `path` instead of benchmarks/RESULTS.md, when it differs."""
    default, results.RESULTS_PATH = results.RESULTS_PATH, Path(path)
    try:
        results.write_section(name, body)
    finally:
        results.RESULTS_PATH = default


def relative_link(path: Path, results_path: Path) -> Path:
    """`path` as a markdown link from the folder of `results_path`."""
    return Path(os.path.relpath(Path(path).resolve(), Path(results_path).resolve().parent))
