"""Training throughput of `training/train_fsdiff.py` on CPU: samples per second and peak memory.

The real script runs twice in fresh subprocesses on the train split of `../shared/data`, once for `--steps` and once
for `2 * --steps` optimisation steps; the difference of the two wall times is the cost of `--steps` steps, free of
start-up, data indexing and the final `save_pretrained`. Peak memory is the larger child's peak resident set.

Usage: python benchmarks/bench_train.py [--resolution 128] [--batch_size 16] [--steps 4] [--threads 2] [--no-write]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import machine_description, markdown_table, write_section

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"


def run_training(steps: int, args: argparse.Namespace, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one training run of `steps` steps in a fresh subprocess."""
    with tempfile.TemporaryDirectory() as output_dir:
        command = [
            sys.executable, str(ROOT / "training" / "train_fsdiff.py"),
            "--train_data_dir", str(DATA_DIR), "--output_dir", output_dir,
            "--resolution", str(args.resolution), "--train_batch_size", str(args.batch_size),
            "--max_train_steps", str(steps), "--checkpointing_steps", "1000000", "--report_to", "none",
            "--lr_warmup_steps", "0", "--seed", "0", *extra,
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        log = Path(output_dir) / "stderr.log"
        with log.open("w") as stderr:
            start = time.perf_counter()
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"training failed:\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128, help="HR crop side (the script's default)")
    parser.add_argument("--batch_size", type=int, default=16, help="crops per step (the script's default)")
    parser.add_argument("--steps", type=int, default=4, help="steps of the short run; the long run does twice as many")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if not DATA_DIR.is_dir():
        sys.exit(f"the shared data folder is missing: {DATA_DIR}")

    rows = []
    for label, extra in (("float32", []), ("float32 + gradient checkpointing", ["--gradient_checkpointing"])):
        short, _ = run_training(args.steps, args, extra)
        long, peak = run_training(2 * args.steps, args, extra)
        per_step = (long - short) / args.steps
        rows.append([label, f"{per_step:.2f}", f"{args.batch_size / per_step:.2f}", f"{peak:.0f}"])
        print(rows[-1], flush=True)

    table = markdown_table(["configuration", "s/step", "samples/s", "peak RSS MiB"], rows)
    body = f"""## Training throughput (`bench_train.py`)

Command: `python benchmarks/bench_train.py --resolution {args.resolution} --batch_size {args.batch_size} \
--steps {args.steps} --threads {args.threads}`

Machine: {machine_description()}; the training process ran with {args.threads} threads.

`training/train_fsdiff.py` with its default model (`FSDiffUNet2DModel()`-size U-Net, `ClarityMambaEncoder()`-size
encoder), {args.resolution}x{args.resolution} HR crops, batch {args.batch_size}, on the train split of
`../shared/data`; time per step from the difference of a {args.steps}-step and a {2 * args.steps}-step run (start-up
and the final save cancel out). Peak RSS: the largest resident set of the longer run's process (`os.wait4`).

{table}
"""
    print(body)
    if not args.no_write:
        write_section("train", body)


if __name__ == "__main__":
    main()
