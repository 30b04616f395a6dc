"""
The loss curve of a `train_fsdiff.py` run, read back from its tensorboard logs, as a markdown table (and a chart).

    python training/loss_curve.py runs/ir_vis --bins 10 --plot loss.png

Each row is the mean of every logged loss over one bin of steps, so the noise of single batches averages out.
"""

import argparse
import glob
import os

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

LOSS_PREFIX = "loss/"


def read_scalars(run_dir: str, prefix: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`{name: (steps, values, wall_times)}` for every `<prefix><name>` scalar in the event files under `run_dir`."""
    files = sorted(glob.glob(os.path.join(run_dir, "**", "events.out.tfevents.*"), recursive=True))
    if not files:
        raise FileNotFoundError(f"No tensorboard event files under {run_dir}: pass the --output_dir of a training run.")
    series: dict[str, dict[int, tuple[float, float]]] = {}
    for path in files:
        events = EventAccumulator(path, size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if tag.startswith(prefix):
                # A resumed run logs into a new file: later files overwrite the steps they repeat.
                logged = {e.step: (e.value, e.wall_time) for e in events.Scalars(tag)}
                series.setdefault(tag[len(prefix) :], {}).update(logged)
    if not series:
        raise ValueError(f"The event files under {run_dir} hold no `{prefix}*` scalars.")
    return {
        name: (
            np.array(sorted(logged)),
            np.array([logged[step][0] for step in sorted(logged)]),
            np.array([logged[step][1] for step in sorted(logged)]),
        )
        for name, logged in series.items()
    }


def read_losses(run_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{name: (steps, values)}` for every `loss/<name>` scalar in the event files under `run_dir`."""
    return {name: (steps, values) for name, (steps, values, _) in read_scalars(run_dir, LOSS_PREFIX).items()}


def binned_table(losses: dict[str, tuple[np.ndarray, np.ndarray]], bins: int) -> str:
    """Markdown table: one row per step bin, the mean of each loss in it."""
    names = sorted(losses)
    last = max(int(steps[-1]) for steps, _ in losses.values())
    edges = np.linspace(0, last, bins + 1).round().astype(int)
    rows = ["| steps | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for start, stop in zip(edges[:-1], edges[1:]):
        cells = []
        for name in names:
            steps, values = losses[name]
            inside = values[(steps > start) & (steps <= stop)]
            cells.append(f"{inside.mean():.4f}" if inside.size else "-")
        rows.append(f"| {start + 1}-{stop} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(losses: dict[str, tuple[np.ndarray, np.ndarray]], path: str, window: int = 50) -> None:
    """Each loss against the step (moving average over `window` steps), one panel per loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(losses), figsize=(4 * len(losses), 3), squeeze=False)
    for axis, (name, (steps, values)) in zip(axes[0], sorted(losses.items())):
        width = min(window, len(values))
        smooth = np.convolve(values, np.ones(width) / width, mode="valid")
        axis.plot(steps[width - 1 :], smooth)
        axis.set_title(f"{name} (mean of {width} steps)")
        axis.set_xlabel("step")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(input_args: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description="Loss curve of a train_fsdiff.py run from its tensorboard logs.")
    parser.add_argument("run_dir", help="The --output_dir of the run (or its logs folder).")
    parser.add_argument("--bins", type=int, default=10, help="Rows of the table.")
    parser.add_argument("--plot", default=None, help="Also save a chart (PNG) here; needs matplotlib.")
    args = parser.parse_args(input_args)
    losses = read_losses(args.run_dir)
    table = binned_table(losses, args.bins)
    print(table)
    if args.plot:
        plot(losses, args.plot)
    return table


if __name__ == "__main__":
    main()
