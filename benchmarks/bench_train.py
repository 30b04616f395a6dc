"""Training throughput of `training/train_fsdiff.py` on CPU, side by side: what each speed option buys, and the
adopted recipe against today's defaults at equal samples (speed and loss).

1. Step cost of each option: the real script runs in a fresh subprocess for `2 * --steps` optimisation steps; the
   seconds per step are those of the second half, from the wall times of its tensorboard logs, so free of start-up,
   data indexing, `torch.compile`'s compilation (minutes on a CPU) and the final save. Peak memory is the run's
   largest process's peak resident set.
2. End to end: today's defaults (float32, files decoded every time) and the adopted recipe (`RECIPE`) each train
   `--long_steps` steps from the same seed; their tensorboard logs give the steady-state seconds per step (from wall
   times, after the first epoch so that the cache is warm) and the loss curve, so that the speed-up is quoted at
   equal loss after the same number of samples.

Usage: python benchmarks/bench_train.py [--resolution 128] [--batch_size 16] [--steps 4] [--long_steps 100]
       [--threads 2] [--no-write]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from results import machine_description, markdown_table, write_section

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"


class Config(NamedTuple):
    """A training configuration: extra flags of the script, how many data-parallel processes share the cores (each
    with `--threads / processes` threads and `batch / processes` crops, so that a step still sees the whole batch;
    launched with `torchrun` and `ACCELERATE_USE_CPU=1`), and a crop size or batch other than the benchmark's."""

    flags: list[str]
    processes: int = 1
    resolution: int | None = None  # HR crop side, else --resolution
    batch_size: int | None = None  # crops per step, else --batch_size


OPTIONS = {
    "float32 (today's default)": Config([]),
    "float32 + gradient checkpointing": Config(["--gradient_checkpointing"]),
    "bf16 autocast": Config(["--mixed_precision", "bf16"]),
    "bf16 + channels_last": Config(["--mixed_precision", "bf16", "--channels_last"]),
    "bf16 + torch.compile (inductor)": Config(["--mixed_precision", "bf16", "--torch_compile"]),
    "bf16 + channels_last, 2 processes x 1 thread": Config(["--mixed_precision", "bf16", "--channels_last"], 2),
    "bf16, 96x96 crops": Config(["--mixed_precision", "bf16"], resolution=96),
    "bf16, half the batch": Config(["--mixed_precision", "bf16"], batch_size=8),
}
"""Step-cost configurations: label -> configuration."""

RECIPE = Config(["--mixed_precision", "bf16", "--cache_images"])
"""The adopted speed settings (the end-to-end comparison's second run)."""


def training_command(output_dir: str, steps: int, args: argparse.Namespace, config: Config) -> list[str]:
    """The command line of `steps` steps of the benchmark's model, data and crop size in `config`."""
    launcher = [sys.executable]
    if config.processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(config.processes)]
    return [
        *launcher, str(ROOT / "training" / "train_fsdiff.py"),
        "--train_data_dir", str(DATA_DIR), "--output_dir", output_dir,
        "--resolution", str(config.resolution or args.resolution),
        "--train_batch_size", str((config.batch_size or args.batch_size) // config.processes),
        "--max_train_steps", str(steps), "--checkpointing_steps", "1000000",
        "--lr_warmup_steps", "0", "--seed", "0", *config.flags,
    ]  # fmt: skip


def run_training(steps: int, args: argparse.Namespace, config: Config, output_dir: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, of the largest process) of one training run of `steps` steps in a fresh
    subprocess."""
    command = training_command(output_dir, steps, args, config)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads // config.processes)), "ACCELERATE_USE_CPU": "1"}
    log = Path(output_dir) / "stderr.log"
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    with log.open("w") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"training failed:\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def logged_run(steps: int, args: argparse.Namespace, config: Config) -> tuple[np.ndarray, np.ndarray, float]:
    """Train `steps` steps with tensorboard logging: the wall time and total loss of every step, and the peak RSS
    (MiB)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tempfile.TemporaryDirectory() as output_dir:
        _, peak = run_training(
            steps, args, config._replace(flags=[*config.flags, "--report_to", "tensorboard"]), output_dir
        )
        events = next(Path(output_dir, "logs").rglob("events.out.tfevents.*")).parent
        scalars = EventAccumulator(str(events)).Reload().Scalars("loss/total")
    return np.array([s.wall_time for s in scalars]), np.array([s.value for s in scalars]), peak


def step_cost(args: argparse.Namespace, config: Config) -> tuple[float, float]:
    """Seconds per step over the second half of a `2 * --steps` run, and its peak RSS (MiB)."""
    wall, _, peak = logged_run(2 * args.steps, args, config)
    return (wall[-1] - wall[args.steps - 1]) / args.steps, peak


def loss_bins(losses: np.ndarray, bins: int) -> list[float]:
    """Mean loss of `bins` equal runs of consecutive steps."""
    return [float(part.mean()) for part in np.array_split(losses, bins)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128, help="HR crop side (the script's default)")
    parser.add_argument("--batch_size", type=int, default=16, help="crops per step (the script's default)")
    parser.add_argument("--steps", type=int, default=4, help="steps of the short run; the long run does twice as many")
    parser.add_argument("--long_steps", type=int, default=100, help="steps of each end-to-end run (several epochs)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if not DATA_DIR.is_dir():
        sys.exit(f"the shared data folder is missing: {DATA_DIR}")

    rows, baseline = [], None
    for label, config in OPTIONS.items():
        per_step, peak = step_cost(args, config)
        batch, side = config.batch_size or args.batch_size, config.resolution or args.resolution
        pixels = batch * side * side / per_step / 1e6
        baseline = baseline or pixels
        rows.append([label, f"{per_step:.2f}", f"{batch / per_step:.2f}", f"{pixels:.3f}", f"{pixels / baseline:.2f}x",
                     f"{peak:.0f}"])  # fmt: skip
        print(rows[-1], flush=True)

    epoch_steps = -(-297 // args.batch_size)  # the train split's 297 pairs
    curves = {}
    processes = f", {RECIPE.processes} processes" if RECIPE.processes > 1 else ""
    recipe_label = f"recipe: {' '.join(RECIPE.flags)}{processes}"
    for label, config in (("float32, decoding every time (today)", Config([])), (recipe_label, RECIPE)):
        wall, losses, _ = logged_run(args.long_steps, args, config)
        steady = np.diff(wall[epoch_steps:]).mean()  # after the first epoch: warm cache, no start-up
        curves[label] = (steady, losses)
        print(label, f"{steady:.3f} s/step", flush=True)
    (today_step, today_losses), (recipe_step, recipe_losses) = curves.values()
    bins = 4
    edges = [f"{part[0] + 1}-{part[-1] + 1}" for part in np.array_split(np.arange(args.long_steps), bins)]
    loss_rows = [
        [label, f"{step:.2f}", f"{args.batch_size / step:.2f}", *(f"{value:.4f}" for value in loss_bins(losses, bins))]
        for label, (step, losses) in curves.items()
    ]
    speedup = today_step / recipe_step

    body = f"""## Training throughput (`bench_train.py`)

Command: `python benchmarks/bench_train.py --resolution {args.resolution} --batch_size {args.batch_size} \
--steps {args.steps} --long_steps {args.long_steps} --threads {args.threads}`

Machine: {machine_description()}; one run at a time, {args.threads} threads in all (a run of N processes gives each
{args.threads} / N threads and {args.batch_size} / N crops per step; peak RSS is its largest process's).

`training/train_fsdiff.py` with its default model (`FSDiffUNet2DModel()`-size U-Net, `ClarityMambaEncoder()`-size
encoder), {args.resolution}x{args.resolution} HR crops, batch {args.batch_size}, on the train split of
`../shared/data`.

Step cost of each option (seconds per step over the last {args.steps} steps of a {2 * args.steps}-step run, from its
logs' wall times: start-up, data indexing, `torch.compile`'s compilation and the final save fall outside; peak RSS of
the run). Each row is one measurement on a
machine shared with other jobs: rows of one run have differed by up to a third between runs, so rerun before
trusting a difference under 1.3x; the end-to-end ratio below, over 100 steps each, is the steadier number:

{markdown_table(["configuration", "s/step", "samples/s", "HR Mpixel/s", "vs float32 (pixels)", "peak RSS MiB"], rows)}

Smaller crops and batches raise the steps per second, but a 96x96 crop carries 56 % of a 128x128 one's pixels and a
half batch half the samples, so the fair comparison is the pixels per second (and the loss they reach, which these
short runs do not show).

End to end, {args.long_steps} steps from the same seed ({args.long_steps * args.batch_size} samples, about
{args.long_steps / epoch_steps:.1f} epochs): seconds per step in the steady state (after the first epoch, from the
logs' wall times) and the mean training loss over the steps of each quarter (steps {", ".join(edges)}):

{markdown_table(["run", "s/step", "samples/s", *(f"loss {edge}" for edge in edges)], loss_rows)}

The recipe is **{speedup:.2f}x** today's samples per second; its loss after the same samples is within
{max(abs(a - b) / b for a, b in zip(loss_bins(recipe_losses, bins), loss_bins(today_losses, bins))) * 100:.1f} % of
today's in every quarter.
"""
    print(body)
    if not args.no_write:
        write_section("train", body)


if __name__ == "__main__":
    main()
