"""Time every fusion metric, and the whole `evaluate` call, on one 640x480 grey triplet.

Usage: python benchmarks/bench_metrics.py [--repeats N]

The triplet is the first MSRS pair of `../shared/data` (infrared, visible converted to grey, their
mean as the fused image), or a synthetic one where that folder is absent. Times are medians over the
repeats, in interleaved rounds after a warm-up round; the target is all metrics in under 1 second.
"""

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fsdiff_diffusers.metrics import METRICS, evaluate  # noqa: E402
from results import machine_description, markdown_table, write_section  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZE = (480, 640)
TARGET_SECONDS = 1.0


def load_triplet():
    """``(fused, infrared, visible, description)``: an MSRS pair and its mean, or synthetic images."""
    infrared_dir = DATA_DIR / "MSRS" / "ir"
    paths = sorted(infrared_dir.glob("*.png")) if infrared_dir.is_dir() else []
    if paths:
        from PIL import Image

        infrared, visible = (
            np.asarray(Image.open(DATA_DIR / "MSRS" / modality / paths[0].name).convert("L"), dtype=np.float64)
            for modality in ("ir", "vi")
        )
        if infrared.shape == SIZE:
            return np.round((infrared + visible) / 2), infrared, visible, f"MSRS {paths[0].name} (mean fusion)"
    rng = np.random.default_rng(0)
    infrared = np.clip(np.cumsum(rng.normal(0, 4, SIZE), axis=1) + 100, 0, 255).round()
    visible = rng.integers(0, 256, SIZE).astype(np.float64)
    return np.round((infrared + visible) / 2), infrared, visible, "synthetic (random walk + noise, mean fusion)"


def median_times(functions: dict, repeats: int) -> dict:
    """Median wall time of every ``functions[name]()`` over `repeats` rounds, after a warm-up round.

    Each round calls every function once, so slow phases of a shared machine hit them all alike.
    """
    times = {name: [] for name in functions}
    for round_index in range(repeats + 1):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            if round_index > 0:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    fused, infrared, visible, description = load_triplet()
    functions = {name: partial(metric, fused, infrared, visible, "vifb") for name, metric in METRICS.items()}
    functions["all"] = partial(evaluate, fused, infrared, visible)
    seconds = median_times(functions, args.repeats)
    for name, value in seconds.items():
        print(f"{name:8s} {value * 1e3:8.1f} ms")
    total = seconds.pop("all")
    rows = [[name, f"{value * 1e3:.1f}"] for name, value in seconds.items()]
    rows.append(["sum of the above", f"{sum(seconds.values()) * 1e3:.1f}"])
    rows.append(["**all (`evaluate`)**", f"**{total * 1e3:.1f}**"])
    load = os.getloadavg()[0]

    verdict = "met" if total < TARGET_SECONDS else "**missed**"
    body = "\n\n".join(
        [
            "## Fusion metrics (`bench_metrics.py`)",
            "Command: `python benchmarks/bench_metrics.py`",
            f"Machine: {machine_description()}. 1-minute load average at the end: {load:.1f}"
            + (" (above the core count: other processes shared the CPU, times are inflated)." if load > 2 else "."),
            f"One {SIZE[1]}x{SIZE[0]} grey triplet: {description}, float64 in 0..255; default VIFB convention; "
            f"median of {args.repeats} interleaved rounds after a warm-up round, per metric and for `evaluate` "
            f"with all {len(METRICS)} metrics.",
            markdown_table(["metric", "ms"], rows),
            f"Target: all metrics for one 640x480 grey triplet in under {TARGET_SECONDS:.0f} s: {verdict} "
            f"({total:.2f} s).",
        ]
    )
    write_section("metrics", body)


if __name__ == "__main__":
    main()
