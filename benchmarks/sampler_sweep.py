"""Quality versus sampling steps: DDIM, DPM-Solver++ and UniPC (optionally DDPM) at a few step counts against DDPM with
1000 steps, on a subset of the test split, with the seconds per image.

Usage:
    python benchmarks/sampler_sweep.py [--pipeline default|PATH] [--dataset TNO] [--limit 3] [--crop 256] [--scale 4]
                                       [--schedulers DDIM DPM-Solver++ UniPC] [--steps 4 8 16 25 50]
                                       [--reference_steps 1000] [--threads N] [--device cpu] [--dtype float32]
                                       [--cache_dir DIR] [--no-write | --results PATH --figures_dir PATH]

Every scheduler is made with `SchedulerClass.from_config(pipe.scheduler.config)` from the loaded pipeline, so all of
them share its prediction type, beta schedule, timestep spacing and thresholding; every run starts from the same noise
(seed 0). The data, the protocol and the metrics are `quality.py`'s: the first `--limit` test pairs of `--dataset`,
centre-cropped to `--crop` (so that 1000 DDPM steps stay affordable on a CPU), PIL bicubic LR at `--scale`, the nine
target metrics and Qabf's per-source terms Q_ir, Q_vi of the fused output against the HR sources, averaged over the
pairs. Each metric's relative difference to the reference is |m - m_ref| / |m_ref|. The issue's target: the default
sampler (the pipeline's own scheduler) comes within 1 % of the reference on every one of the nine target metrics in
at most 16 U-Net evaluations (Q_ir and Q_vi are shown, not judged).

Every output is cached under `--cache_dir` (default: a folder under /tmp), keyed by the pipeline's weights, the
scheduler and its config, the step count, the pair, the crop, the scale, the seed, the dtype, the device and the thread
count, so that a rerun skips the 1000-step reference and every run it has already made. Writes the "sampler_sweep"
section of RESULTS.md and figures/sampler_sweep.png (unless --no-write).
"""

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import quality  # noqa: E402
from fsdiff_diffusers import protocol  # noqa: E402
from results import machine_description, markdown_table  # noqa: E402
from sampler_sweep_runs import (  # noqa: E402
    CACHE_DIR,
    METRICS,
    REFERENCE,
    SCHEDULERS,
    TOLERANCE,
    Sampler,
    SweepRun,
    label_of,
    load_examples,
    smallest_within,
)

STEPS = (4, 8, 16, 25, 50)
MAX_EVALUATIONS = 16
"""The target: the default sampler is within `TOLERANCE` in at most this many U-Net evaluations per image."""
CHART_METRICS = ["Qabf", "SCD", "VIF", "SSIM", "SF"]


def sweep_table(runs: Sequence[SweepRun], reference: SweepRun, names: Sequence[str] = METRICS) -> str:
    """A row per run: U-Net evaluations, s/image, each of `names` with its relative difference to `reference`, the
    worst difference of the target metrics (the judged ones); the reference first."""
    headers = ["scheduler", "steps", "U-Net evals", "s/image", *names, "max rel. diff.", "within 1 %"]
    rows = [
        [
            f"**{reference.scheduler} (reference)**",
            reference.steps,
            f"{reference.evaluations:g}",
            f"{reference.seconds:.3g}",
        ]
        + [f"{reference.scores[name]:.4g}" for name in names]
        + ["0", ""]
    ]
    for run in runs:
        shown, differences = run.differences(reference, names), run.differences(reference)
        rows.append(
            [run.scheduler, run.steps, f"{run.evaluations:g}", f"{run.seconds:.3g}"]
            + [f"{run.scores[name]:.4g} ({100 * shown[name]:.2f} %)" for name in names]
            + [
                f"{100 * max(differences.values()):.2f} % ({max(differences, key=differences.get)})",
                "yes" if run.within(reference) else "no",
            ]
        )
    return markdown_table(headers, rows)


def summary_table(runs: Sequence[SweepRun], reference: SweepRun, schedulers: Sequence[str]) -> str:
    """Per scheduler: the fewest steps within `TOLERANCE` of the reference on every target metric, its evaluations and
    time."""
    rows = []
    for label in schedulers:
        own = [run for run in runs if run.scheduler == label]
        best = smallest_within(own, reference)
        if best is None:
            closest = min(own, key=lambda run: max(run.differences(reference).values()))
            worst = max(closest.differences(reference).values())
            rows.append(
                [
                    label,
                    "none of " + ", ".join(str(run.steps) for run in own),
                    "",
                    "",
                    f"closest: {closest.steps} steps, {100 * worst:.2f} %",
                ]
            )
        else:
            rows.append([label, best.steps, f"{best.evaluations:g}", f"{best.seconds:.3g}", ""])
    return markdown_table(["scheduler", "fewest steps within 1 %", "U-Net evals", "s/image", "note"], rows)


def verdict(runs: Sequence[SweepRun], reference: SweepRun, default: str) -> str:
    """PASS / MISS line of the target: the default sampler within 1 % in at most `MAX_EVALUATIONS` evaluations."""
    own = [run for run in runs if run.scheduler == default]
    best = smallest_within(own, reference)
    target = (
        f"the default sampler ({default}) within {100 * TOLERANCE:g} % of {reference.scheduler}-{reference.steps} on "
        f"every target metric in at most {MAX_EVALUATIONS} U-Net evaluations"
    )
    if best is not None and best.evaluations <= MAX_EVALUATIONS:
        return (
            f"**PASS**: {target}: {best.steps} steps ({best.evaluations:g} evaluations, {best.seconds:.3g} s/image)."
        )
    allowed = [run for run in own if run.evaluations <= MAX_EVALUATIONS] or own
    closest = min(allowed, key=lambda run: max(run.differences(reference).values()))
    differences = closest.differences(reference)
    misses = ", ".join(f"{name} {100 * value:.2f} %" for name, value in differences.items() if value > TOLERANCE)
    reached = (
        f"it first gets there at {best.steps} steps ({best.evaluations:g} evaluations)"
        if best
        else "no step count tried gets there"
    )
    return (
        f"**MISS**: {target}. At {closest.steps} steps ({closest.evaluations:g} evaluations) it is off by {misses}; "
        f"{reached}."
    )


def chart(runs: Sequence[SweepRun], reference: SweepRun, schedulers: Sequence[str], path: Path) -> Path:
    """`CHART_METRICS` and the seconds per image versus steps, a line per scheduler, the reference as a dashed line
    with its 1 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*CHART_METRICS, "s/image"]
    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    for axis, panel in zip(axes.flat, panels):
        for label in schedulers:
            own = sorted((run for run in runs if run.scheduler == label), key=lambda run: run.steps)
            values = [run.seconds if panel == "s/image" else run.scores[panel] for run in own]
            axis.plot([run.steps for run in own], values, marker="o", label=label)
        value = reference.seconds if panel == "s/image" else reference.scores[panel]
        axis.axhline(value, color="black", linestyle="--", label=f"{reference.scheduler} {reference.steps} steps")
        if panel == "s/image":
            axis.set_yscale("log")
        else:
            axis.axhspan(value * (1 - TOLERANCE), value * (1 + TOLERANCE), color="grey", alpha=0.2, label="±1 %")
        axis.set_xscale("log")
        steps = sorted({run.steps for run in runs})
        axis.set_xticks(steps, [str(step) for step in steps])
        axis.minorticks_off()
        axis.set_xlabel("steps")
        axis.set_title(panel)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("Quality versus sampling steps (mean over the sweep's pairs)", x=0.01, ha="left")
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=70)
    plt.close(figure)
    return path


SCHEDULER_KEYS = (
    "algorithm_type",
    "solver_order",
    "prediction_type",
    "beta_schedule",
    "timestep_spacing",
    "thresholding",
)
"""The scheduler config entries the section names."""


def section(
    args: argparse.Namespace,
    runs: Sequence[SweepRun],
    reference: SweepRun,
    default: str,
    scheduler_config: dict,
    examples: dict[str, protocol.ProtocolPair],
    figure: Path | None,
    seconds: float,
) -> str:
    """The "sampler_sweep" section of RESULTS.md."""
    command = f"python benchmarks/{Path(__file__).name}{' ' + ' '.join(args.argv) if args.argv else ''}"
    model = "`fsdiff_diffusers.DEFAULT_MODEL`" if args.pipeline == "default" else f"`{args.pipeline}`"
    config = ", ".join(f"{key}={scheduler_config[key]}" for key in SCHEDULER_KEYS if key in scheduler_config)
    stems = ", ".join(name.split("/")[1] for name in examples)
    crop = f"HR centre-cropped to {args.crop} x {args.crop}, " if args.crop else ""
    cached = sum(run.cached for run in [reference, *runs])
    cache = (
        f" {cached} of {len(examples) * (len(runs) + 1)} pipeline runs came from the cache (`{args.cache_dir}`): "
        "their seconds are those of the run that made them."
    )
    parts = [
        "## Quality versus sampling steps (`sampler_sweep.py`)",
        f"Command: `{command}` ({seconds / 60:.1f} min).",
        f"Machine: {machine_description()}; {args.dtype} on {args.device}.",
        f"Model: {model}; its own scheduler (the default sampler) is {default} ({config}). Every scheduler is "
        f"`Class.from_config(pipe.scheduler.config)`, seed {args.seed} for all. U-Net evaluations per image are "
        "counted with a forward hook on the U-Net; the multistep solvers (DPM-Solver++, UniPC) reuse earlier "
        "outputs, so for them, as for DDIM and DDPM, evaluations = steps.",
        f"Subset: the first {len(examples)} test pairs of {args.dataset} ({stems}), {crop}LR = PIL bicubic "
        f"/{args.scale}; metrics (`quality.score`, VIFB convention) of the x{args.scale} output against the HR "
        "sources, mean over the pairs; s/image: wall time of one pipeline call (encoder included). In brackets: the "
        f"relative difference |m - m_ref| / |m_ref| to {reference.scheduler} with {reference.steps} steps. "
        "Q_ir and Q_vi (Qabf's per-source terms) are shown only: the worst difference, the 1 % check and the "
        "target are on the other nine."
        + (cache if cached else ""),
        verdict(runs, reference, default),
        summary_table(runs, reference, list(dict.fromkeys(run.scheduler for run in runs))),
        sweep_table(runs, reference),
        f"![quality versus steps]({figure})" if figure else "",
    ]
    return "\n\n".join(part for part in parts if part)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    quality.add_pipeline_arguments(parser, default="default")
    parser.add_argument("--dataset", default="TNO", help="test set of the sweep (default: TNO)")
    parser.add_argument("--limit", type=int, default=3, help="its first N test pairs (default: 3)")
    parser.add_argument("--crop", type=int, default=256, help="HR centre crop, N x N (default: 256; 0: whole images)")
    parser.add_argument("--scale", type=int, default=4, help="super-resolution factor (default: 4)")
    parser.add_argument(
        "--schedulers",
        nargs="+",
        default=["DDIM", "DPM-Solver++", "UniPC"],
        metavar="NAME",
        help=f"labels out of {', '.join(SCHEDULERS)} or diffusers class names (default: DDIM DPM-Solver++ UniPC; the "
        "pipeline's own scheduler is always added)",
    )
    parser.add_argument("--steps", nargs="+", type=int, default=list(STEPS), help="default: 4 8 16 25 50")
    parser.add_argument(
        "--reference_steps", type=int, default=1000, help="DDPM steps of the reference (default: 1000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache_dir", type=Path, default=CACHE_DIR, help=f"output cache (default: {CACHE_DIR})")
    parser.add_argument("--no_cache", action="store_true", help="neither read nor write the cache")
    quality.add_output_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = list(argv)
    args.crop = args.crop or None
    return args


def main(argv: Sequence[str] | None = None) -> tuple[list[SweepRun], SweepRun, str]:
    """Returns `(runs, reference, default sampler label)`."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    pipe = quality.load_pipeline(args.pipeline, device=args.device, dtype=args.dtype)
    default, scheduler_config = label_of(pipe.scheduler), dict(pipe.scheduler.config)
    schedulers = list(dict.fromkeys([*args.schedulers, default]))
    sampler = Sampler(
        pipe,
        args.seed,
        None if args.no_cache else args.cache_dir,
        dtype=args.dtype,
        device=args.device,
        threads=torch.get_num_threads(),
    )
    examples = load_examples(args.dataset, args.limit, args.crop, args.scale)
    jobs = [(REFERENCE, args.reference_steps)] + [
        (label, steps) for label in schedulers for steps in sorted(args.steps)
    ]
    runs = []
    for label, steps in tqdm(jobs, desc="sweep", unit="run", file=sys.stderr):
        runs.append(sampler.run(label, steps, examples))
        run = runs[-1]
        scores = " ".join(f"{name}={value:.4g}" for name, value in run.scores.items())
        tqdm.write(f"{label} {steps} steps: {run.evaluations:g} evals, {run.seconds:.3g} s/image, {scores}")
    reference, runs = runs[0], runs[1:]
    print(verdict(runs, reference, default))
    if not args.no_write:
        figure = chart(runs, reference, schedulers, args.figures_dir / "sampler_sweep.png")
        link = quality.relative_link(figure, args.results)
        body = section(args, runs, reference, default, scheduler_config, examples, link, time.perf_counter() - start)
        quality.write_results_section("sampler_sweep", body, args.results)
    return runs, reference, default


if __name__ == "__main__":
    main()
