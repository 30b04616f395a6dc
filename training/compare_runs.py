"""
Training runs side by side, from their tensorboard logs: loss and validation metrics against steps and wall time.

    python training/compare_runs.py runs/width_full runs/width_half --bins 6 --plot widths.png

For each run: its models' size (parameters of the last checkpoint's U-Net and encoder), seconds per step (median of
the logged steps' wall-time differences: compare runs that trained at the same time, or one at a time, on one
machine), the training loss binned over steps, and the validation metrics (`validation/*`, logged every
`--validation_steps` on the validation split) at each step they were logged, with the wall time it took to get there.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open

if __package__ in (None, ""):  # run as a script: make `training` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.loss_curve import LOSS_PREFIX, read_scalars  # noqa: E402

VALIDATION_PREFIX = "validation/"
SHOWN_METRICS = ("Qabf", "SSIM", "SCD", "MI", "VIF", "EN", "SD", "SF", "AG")
"""Validation metrics in the table, in this order (those a run logged)."""


def parameters(run_dir: Path) -> str:
    """Millions of parameters of the U-Net and the encoder of the run's last checkpoint (`"?"` without one)."""
    checkpoints = sorted(run_dir.glob("checkpoint-*/unet"), key=lambda path: int(path.parent.name.split("-")[1]))
    if not checkpoints:
        return "?"
    counts = []
    for folder in (checkpoints[-1], checkpoints[-1].parent / "clarity_encoder"):
        with safe_open(str(next(folder.glob("*.safetensors"))), "pt") as weights:
            counts.append(sum(np.prod(weights.get_slice(key).get_shape()) for key in weights.keys()))
    config = json.loads((checkpoints[-1] / "config.json").read_text())
    return f"{counts[0] / 1e6:.2f} + {counts[1] / 1e6:.2f} (U-Net {tuple(config['block_out_channels'])})"


def compare(run_dirs: list[str], bins: int) -> str:
    """The markdown tables: size, speed and binned loss per run; validation metrics per run and step."""
    runs = {Path(run).name: (Path(run), read_scalars(run, LOSS_PREFIX)) for run in run_dirs}
    last = min(int(scalars["total"][0][-1]) for _, scalars in runs.values())
    edges = np.linspace(0, last, bins + 1).round().astype(int)
    header = "| run | parameters (M) | s/step | " + " | ".join(f"loss {a + 1}-{b}" for a, b in zip(edges, edges[1:]))
    lines = [header + " |", "|---" * (3 + bins) + "|"]
    validation_lines = []
    for name, (run_dir, scalars) in runs.items():
        steps, values, walls = scalars["total"]
        per_step = float(np.median(np.diff(walls)))
        binned = [values[(steps > a) & (steps <= b)].mean() for a, b in zip(edges, edges[1:])]
        lines.append(f"| {name} | {parameters(run_dir)} | {per_step:.2f} | " + " | ".join(f"{v:.4f}" for v in binned))
        lines[-1] += " |"
        metrics = read_scalars(str(run_dir), VALIDATION_PREFIX)
        shown = [metric for metric in SHOWN_METRICS if metric in metrics]
        if not validation_lines:
            validation_lines = ["| run | step | hours | " + " | ".join(shown) + " |", "|---" * (3 + len(shown)) + "|"]
        for index, step in enumerate(metrics[shown[0]][0]):
            hours = (metrics[shown[0]][2][index] - walls[0]) / 3600
            cells = " | ".join(f"{metrics[metric][1][index]:.4f}" for metric in shown)
            validation_lines.append(f"| {name} | {step} | {hours:.2f} | {cells} |")
    return "\n".join(lines) + "\n\n" + "\n".join(validation_lines)


def plot(run_dirs: list[str], path: str, window: int = 50) -> None:
    """Training loss (moving average) and validation Qabf against wall hours, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
    for run in run_dirs:
        steps, values, walls = read_scalars(run, LOSS_PREFIX)["total"]
        hours = (walls - walls[0]) / 3600
        width = min(window, len(values))
        smooth = np.convolve(values, np.ones(width) / width, mode="valid")
        loss_axis.plot(hours[width - 1 :], smooth, label=Path(run).name)
        _, qabf, metric_walls = read_scalars(run, VALIDATION_PREFIX)["Qabf"]
        metric_axis.plot((metric_walls - walls[0]) / 3600, qabf, marker="o", label=Path(run).name)
    loss_axis.set(title=f"training loss (mean of {window} steps)", xlabel="hours")
    metric_axis.set(title="validation Qabf", xlabel="hours")
    loss_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(input_args: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description="Training runs side by side, from their tensorboard logs.")
    parser.add_argument("run_dirs", nargs="+", help="The --output_dir of each run.")
    parser.add_argument("--bins", type=int, default=6, help="Loss columns.")
    parser.add_argument("--plot", default=None, help="Also save a chart (PNG) here; needs matplotlib.")
    args = parser.parse_args(input_args)
    tables = compare(args.run_dirs, args.bins)
    print(tables)
    if args.plot:
        plot(args.run_dirs, args.plot)
    return tables


if __name__ == "__main__":
    main()
