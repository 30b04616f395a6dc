"""Fusion + super-resolution quality on the held-out test pairs: bicubic + classical fusion baselines (and FS-Diff,
when `--pipeline` is given) at x2, x4 and x8, and HKDnet's published outputs against the same baselines.

Usage:
    python benchmarks/quality.py [--datasets TNO MSRS ...] [--scales 2 4 8] [--methods mean max laplacian gff]
                                 [--pipeline default|PATH [--steps N] [--scheduler CLASS] [--pipeline_datasets ...]]
                                 [--threads N] [--device cpu] [--dtype float32] [--limit N] [--crop N]
                                 [--no-write | --results PATH --figures_dir PATH]

Protocol (`fsdiff_diffusers.protocol`): sources to 8-bit grey, top-left crop to a multiple of the scale (HR), PIL
bicubic downscale (LR); each method turns the LR pair into an HR-size image, rounded to 8 bits, scored with every
metric of `fsdiff_diffusers.metrics` (VIFB convention) against the HR sources.

FS-Diff appears as one method ("FS-Diff (N steps)") whichever model produced it. `--pipeline default` runs each
dataset with the shipped model of its modality: `fsdiff_diffusers.IR_VIS_MODEL` on the infrared-visible sets (TNO,
MSRS, LLVIP, HKDnet_peer), `fsdiff_diffusers.MEDICAL_MODEL` on the Harvard sets (MRI as `infrared=`, CT / PET /
SPECT as `visible=`); `--pipeline_datasets` then defaults to every dataset whose model is there (a folder with a
model_index.json), and a dataset whose model is missing shows the baselines only, the section saying why. Each
model is loaded once, and only when one of its datasets runs. `--pipeline PATH` runs that one pipeline on
`--pipeline_datasets` (default: the infrared-visible test sets TNO, MSRS, LLVIP). Each table also gives the
seconds per image of every method, and for FS-Diff a target check: on how many of EN, SD, SF, AG, MI, SCD, VIF,
Qabf, SSIM it beats the best baseline (the issue's target: at least 6 of 9 on TNO x4), and apart from that count
whether its Q_ir and Q_vi (Qabf's per-source terms) are each at least the best baseline's. Writes the "quality"
section of RESULTS.md, a bar chart per scale and an image grid per dataset (LR inputs, the best baseline, FS-Diff
at x4) under benchmarks/figures/ (unless --no-write).

The full report: `python benchmarks/quality.py --pipeline default`.

The script is split over sibling modules, which it re-exports (`quality.X` keeps working): `quality_data` (splits,
pairs, sources), `quality_scores` (metrics, scores, the target check), `quality_runs` (the protocol and HKDnet runs),
`quality_plan` (which FS-Diff model runs where), `quality_figures` (charts, image grids) and `quality_report` (the
RESULTS.md section, --json). This module keeps the command line, the pipeline loading and the plan, so that tests can
point `IR_VIS_MODEL`, `MEDICAL_MODEL` and `load_pipeline` elsewhere on this module.
"""

import argparse
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import results  # noqa: E402
from fsdiff_diffusers import IR_VIS_MODEL, MEDICAL_MODEL, loading, protocol  # noqa: E402
from fsdiff_diffusers.fusion import FUSION_METHODS  # noqa: E402
from fsdiff_diffusers.loading import DTYPES  # noqa: E402
from quality_data import (  # noqa: E402
    HKDNET,
    INFRARED_VISIBLE,
    MEDICAL,
    SPLITS,
    centre_crop,
    load_sources,
    modalities,
    split_pairs,
    split_stems,
)
from quality_figures import GRID_TILE, bar_charts, image_grids  # noqa: E402
from quality_plan import FSDiffModel, FSDiffPlan, display_path, model_present  # noqa: E402
from quality_report import (  # noqa: E402
    relative_link,
    section,
    target_line,
    target_table,
    write_json,
    write_results_section,
)
from quality_runs import ProtocolResults, run_hkdnet, run_protocol  # noqa: E402
from quality_scores import (  # noqa: E402
    EDGE_METRICS,
    TARGET_METRICS,
    Method,
    Scores,
    TargetCheck,
    baseline_name,
    best_baseline,
    fsdiff_name,
    mean_scores,
    score,
    target_check,
    timed,
)

__all__ = [  # what other scripts and the tests use, besides what this module defines
    "EDGE_METRICS",
    "GRID_TILE",
    "HKDNET",
    "TARGET_METRICS",
    "Scores",
    "TargetCheck",
    "best_baseline",
    "centre_crop",
    "fsdiff_name",
    "load_sources",
    "mean_scores",
    "relative_link",
    "score",
    "split_pairs",
    "split_stems",
    "target_check",
    "target_line",
    "target_table",
    "timed",
    "write_results_section",
]


FIGURES_DIR = Path(__file__).with_name("figures")
SCALES = (2, 4, 8)
PIPELINE_DATASETS = ("TNO", "MSRS", "LLVIP")
"""Where `--pipeline PATH` runs by default: the infrared-visible test sets."""


def load_pipeline(path: str, scheduler: str | None = None, device: str = "cpu", dtype: str = "float32"):
    """[`fsdiff_diffusers.loading.load_pipeline`] with progress bars off; "default" is the shipped model
    (`fsdiff_diffusers.DEFAULT_MODEL`), `scheduler` a Diffusers class name or alias."""
    from fsdiff_diffusers import DEFAULT_MODEL

    pipe = loading.load_pipeline(DEFAULT_MODEL if path == "default" else path, device, dtype, scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fsdiff_method(pipe, steps: int, seed: int = 0) -> Method:
    """Fusion of an LR pair with `pipe` (an `FSDiffPipeline`) in `steps` steps, from the noise of `seed`."""

    def run(infrared_lr: np.ndarray, visible_lr: np.ndarray, scale: float) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)
        output = pipe(
            infrared_lr, visible_lr, scale=scale, num_inference_steps=steps, generator=generator, output_type="np"
        )
        return protocol.to_uint8(output.images[0, ..., 0])

    return run


def shipped_models() -> dict[str, tuple[str, str]]:
    """Modality -> (how the report names the shipped model of it, its folder). Read when called, so that the
    module's `IR_VIS_MODEL` / `MEDICAL_MODEL` can be pointed elsewhere (tests)."""
    return {
        INFRARED_VISIBLE: ("`fsdiff_diffusers.IR_VIS_MODEL` (the shipped infrared-visible model)", IR_VIS_MODEL),
        MEDICAL: (
            "`fsdiff_diffusers.MEDICAL_MODEL` (the shipped medical model: MRI as `infrared=`, CT / PET / SPECT as "
            "`visible=`)",
            MEDICAL_MODEL,
        ),
    }


def plan_fsdiff(args: argparse.Namespace) -> FSDiffPlan:
    """Which model runs on which of `args.datasets`: none without `--pipeline`; `--pipeline default` the shipped model
    of each dataset's modality (where its folder holds a model_index.json); `--pipeline PATH` that one pipeline. Either
    way only on `args.pipeline_datasets`."""
    if not args.pipeline:
        return FSDiffPlan()
    wanted = [dataset for dataset in args.datasets if dataset in args.pipeline_datasets]
    not_listed = "not in `--pipeline_datasets` (add it there to run FS-Diff on it)"
    plan = FSDiffPlan()
    if args.pipeline != "default":
        plan.models.append(FSDiffModel(f"`{args.pipeline}`", args.pipeline, wanted))
        plan.baselines_only = {dataset: not_listed for dataset in args.datasets if dataset not in wanted}
        return plan
    modality = modalities()
    for group, (label, path) in shipped_models().items():
        own = [dataset for dataset in args.datasets if modality[dataset] == group]
        if not own:
            continue
        missing = (
            ""
            if model_present(path)
            else f"{label} is not in this checkout (no model_index.json in `{display_path(path)}`)"
        )
        plan.models.append(FSDiffModel(label, path, [d for d in own if d in wanted], missing))
        for dataset in own:
            if missing:
                plan.baselines_only[dataset] = missing
            elif dataset not in wanted:
                plan.baselines_only[dataset] = not_listed
    return plan


def build_methods(args: argparse.Namespace, plan: FSDiffPlan, datasets: Sequence[str]) -> dict[str, dict[str, Method]]:
    """Dataset -> the methods to run on it: the baselines of `--methods`, then FS-Diff where `plan` runs a model on
    it, all under one name (`fsdiff_name`). Each model is loaded once, and only when one of its datasets is in
    `datasets`."""
    baselines = {baseline_name(name): partial(protocol.bicubic_fusion_baseline, method=name) for name in args.methods}
    methods = {dataset: dict(baselines) for dataset in datasets}
    for model in plan.models:
        running = [dataset for dataset in model.datasets if dataset in methods]
        if model.missing or not running:
            continue
        pipe = load_pipeline(model.path, args.scheduler, args.device, args.dtype)
        default = pipe.default_num_inference_steps
        if args.steps is None or args.default_steps:
            if args.default_steps and args.steps != default:
                raise SystemExit(f"{model.path} takes {default} default steps, another {args.steps}: pass --steps")
            args.steps, args.default_steps = default, True
        for dataset in running:
            methods[dataset][fsdiff_name(args.steps, args.scheduler)] = fsdiff_method(pipe, args.steps)
    return methods


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    split_parser = argparse.ArgumentParser(add_help=False)
    split_parser.add_argument("--split", choices=SPLITS, default="test")
    split = split_parser.parse_known_args(argv)[0].split  # the datasets and their defaults follow it
    datasets = [*split_stems(split), *([HKDNET] if split == "test" else [])]
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="test",
        help="test (default): the report, written to RESULTS.md; validation: the pairs that choose settings and "
        "checkpoints, printed only (never written to RESULTS.md) and saved with --json",
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
    parser.add_argument(
        "--methods", nargs="+", choices=FUSION_METHODS, default=["mean", "max", "laplacian", "laplacian_max", "gff"]
    )
    add_pipeline_arguments(
        parser,
        pipeline_help="'default': each dataset with the shipped model of its modality (fsdiff_diffusers.IR_VIS_MODEL "
        "on the infrared-visible sets, fsdiff_diffusers.MEDICAL_MODEL on the Harvard sets), or the folder / Hub id "
        "of a saved FSDiffPipeline to add as a method on --pipeline_datasets",
    )
    parser.add_argument(
        "--steps", type=int, help="denoising steps of --pipeline (default: the model's own default_num_inference_steps)"
    )
    parser.add_argument("--scheduler", help="diffusers scheduler class for --pipeline, e.g. DDIMScheduler")
    parser.add_argument(
        "--pipeline_datasets",
        nargs="+",
        choices=datasets,
        metavar="NAME",
        help="where --pipeline runs; the others show baselines only (default: with --pipeline default every dataset "
        f"whose shipped model is there, with --pipeline PATH {' '.join(PIPELINE_DATASETS)})",
    )
    parser.add_argument("--limit", type=int, help="at most this many pairs per dataset (quick checks)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the mean scores and target checks here")
    parser.add_argument(
        "--crop", type=int, help="centre-crop the sources to N x N first (quick checks; MS-SSIM needs N >= 176)"
    )
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = list(argv)
    if args.pipeline_datasets is None:
        args.pipeline_datasets = default_pipeline_datasets(args.pipeline, datasets, args.split)
    args.no_write = args.no_write or args.split == "validation"
    args.default_steps = False  # set by build_methods when --steps is left to the models' own defaults
    return args


def default_pipeline_datasets(pipeline: str | None, datasets: Sequence[str], split: str = "test") -> list[str]:
    """`--pipeline_datasets` when not given: with `--pipeline default` those of `datasets` whose modality's shipped
    model is there, else `PIPELINE_DATASETS` (on the validation split: every dataset)."""
    if pipeline != "default":
        return list(PIPELINE_DATASETS) if split == "test" else list(datasets)
    modality, models = modalities(), shipped_models()
    return [dataset for dataset in datasets if model_present(models[modality[dataset]][1])]


def add_pipeline_arguments(
    parser: argparse.ArgumentParser, default: str | None = None, pipeline_help: str | None = None
) -> None:
    """--pipeline, --threads, --device and --dtype (shared with sampler_sweep.py)."""
    parser.add_argument(
        "--pipeline",
        default=default,
        help=pipeline_help
        or "'default' (fsdiff_diffusers.DEFAULT_MODEL, the shipped infrared-visible model), or the folder / Hub id "
        f"of a saved FSDiffPipeline{'' if default else ' to add as a method'}",
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads(N) (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="torch device of the pipeline (default: cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="pipeline dtype (default: float32)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--no-write, --results and --figures_dir (shared with sampler_sweep.py)."""
    parser.add_argument("--no-write", action="store_true", help="print only: leave RESULTS.md and figures/ alone")
    parser.add_argument("--results", type=Path, default=results.RESULTS_PATH, help="the RESULTS.md to write into")
    parser.add_argument("--figures_dir", type=Path, default=FIGURES_DIR, help="where the figures go")


def main(argv: Sequence[str] | None = None) -> ProtocolResults:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    plan = plan_fsdiff(args)
    for model in plan.models:
        where = "not run: " + model.missing if model.missing else "on " + (", ".join(model.datasets) or "no dataset")
        print(f"FS-Diff: {model.label} ({model.path}), {where}")
    methods = build_methods(args, plan, args.datasets)
    stems = split_stems(args.split)
    datasets = {name: split_pairs(name, stems[name], args.limit) for name in args.datasets if name != HKDNET}
    measured = run_protocol(datasets, args.scales, {name: methods[name] for name in datasets}, args.crop)
    hkdnet_methods = methods.get(HKDNET, {})
    hkdnet = run_hkdnet(hkdnet_methods, args.limit) if HKDNET in args.datasets else {}
    for key, scores in {**measured.means, **hkdnet}.items():
        seconds = f" s/image={measured.seconds[key]:.3g}" if key in measured.seconds else ""
        print(*key, " ".join(f"{name}={value:.4g}" for name, value in scores.items()) + seconds)
    for (dataset, scale), check in measured.target_checks(args.scales).items():
        print(f"target check {dataset} x{scale} ({check.method}): {check.summary()}; {check.details()}")
        print(f"target check {dataset} x{scale} ({check.method}): {check.edge_summary()}")
    if args.json:
        write_json(args.json, args.split, measured)
    if args.no_write:
        return measured
    args.figures_dir.mkdir(parents=True, exist_ok=True)
    figures = bar_charts(measured.means, args.scales, args.figures_dir) if measured.means else []
    grids = image_grids(measured, args.figures_dir) if measured.grid else {}
    link = partial(relative_link, results_path=args.results)
    figures, grids = [link(path) for path in figures], {
        name: (link(path), best) for name, (path, best) in grids.items()
    }
    pair_counts = {name: len(pairs) for name, pairs in datasets.items()}
    seconds = time.perf_counter() - start
    body = section(args, measured, pair_counts, hkdnet, list(hkdnet_methods), figures, grids, seconds, plan)
    write_results_section("quality", body, args.results)
    return measured


if __name__ == "__main__":
    main()
