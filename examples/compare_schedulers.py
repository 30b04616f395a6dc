#!/usr/bin/env python
"""Swap the pipeline's scheduler and compare speed and result at a few step counts.

    python examples/compare_schedulers.py                                  # 5 schedulers x 5/10/20 steps
    python examples/compare_schedulers.py --schedulers dpm++ heun EulerAncestralDiscreteScheduler --steps 4 8

Any Diffusers scheduler compatible with DDPMScheduler can replace the shipped DPM-Solver++ sampler; build it from the
pipeline's scheduler config (betas, prediction type, clipping): `XScheduler.from_config(pipe.scheduler.config)`.
Every run fuses the same pair from the same noise (seed). The reference is the shipped scheduler at --reference_steps:
deterministic samplers (DPM-Solver++, UniPC, DDIM, Euler, Heun) solve the same probability-flow ODE from that noise,
so their mean absolute difference (MAD) to it is their discretisation error. Stochastic ones (DDPM, Euler ancestral;
marked *) add fresh noise at each step and draw another sample: their MAD keeps a floor of sampling variance.
"""

import argparse
import time
from typing import NamedTuple

import numpy as np
import torch

from _common import DEVICE, default_pair, load_pipeline
from fsdiff_diffusers import DEFAULT_MODEL
from fsdiff_diffusers.loading import SCHEDULER_ALIASES, scheduler_class  # the names `fsdiff fuse --scheduler` takes

STOCHASTIC = {"DDPMScheduler", "EulerAncestralDiscreteScheduler", "KDPM2AncestralDiscreteScheduler"}
"""Samplers that add fresh noise at every step (the others are deterministic ODE solvers)."""


class Result(NamedTuple):
    scheduler: str
    steps: int
    seconds: float
    difference: float  # MAD to the reference, 0-255 scale


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Saved pipeline folder or Hub id.")
    parser.add_argument("--schedulers", nargs="+", default=["dpm++", "unipc", "ddim", "euler", "ddpm"],
                        help=f"Short names ({', '.join(SCHEDULER_ALIASES)}) or Diffusers class names.")  # fmt: skip
    parser.add_argument("--steps", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--reference_steps", type=int, default=50, help="Steps of the shipped scheduler's reference.")
    parser.add_argument("--size", type=int, default=80, help="Width of the low-resolution input pair.")
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=DEVICE)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Result]:
    """Print the comparison table; returns its rows (the reference first)."""
    args = parse_args(argv)
    infrared, visible, label = default_pair(args.size)
    pipe = load_pipeline(args.model, args.device)
    pipe.set_progress_bar_config(disable=True)
    shipped = pipe.scheduler
    classes = {name: scheduler_class(name, shipped) for name in args.schedulers}  # unknown names fail up front

    def fuse(steps: int) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        image = pipe(infrared, visible, scale=args.scale, num_inference_steps=steps, output_type="np",
                     generator=torch.Generator().manual_seed(args.seed)).images[0]  # fmt: skip
        return image, time.perf_counter() - start

    fuse(1)  # warm-up: the first call pays for one-off allocations
    reference, seconds = fuse(args.reference_steps)
    reference_name = type(shipped).__name__.removesuffix("Scheduler") + " (ref)"
    results = [Result(reference_name, args.reference_steps, seconds, 0.0)]
    skipped = []
    for name, scheduler in classes.items():
        pipe.scheduler = scheduler.from_config(shipped.config)
        name += " *" if scheduler.__name__ in STOCHASTIC else ""
        try:
            for steps in args.steps:
                image, seconds = fuse(steps)
                results.append(Result(name, steps, seconds, 255 * float(np.abs(image - reference).mean())))
        except (NotImplementedError, ValueError) as error:  # e.g. a prediction type this scheduler lacks
            skipped.append(f"{name}: skipped ({error})")
    pipe.scheduler = shipped

    height, width = reference.shape[:2]
    print(f"{label}, fused at x{args.scale:g} to {width}x{height} on {args.device}, seed {args.seed}")
    print(f"| {'scheduler':<24} | steps | s / image |   MAD vs ref |")
    print(f"|{'-' * 26}|-------|-----------|--------------|")
    for name, steps, seconds, difference in results:
        print(f"| {name:<24} | {steps:>5} | {seconds:>9.2f} | {difference:>12.2f} |")
    print("MAD: mean absolute difference (0-255) to the reference; * stochastic sampler (a different sample).")
    for line in skipped:
        print(line)
    return results


if __name__ == "__main__":
    main()
