#!/usr/bin/env python
"""Fuse and super-resolve one infrared + visible pair with `FSDiffPipeline`.

    python examples/fuse_pair.py                                    # the default pair, x4, 10 steps -> fused.png
    python examples/fuse_pair.py --infrared ir.png --visible vi.png --scale 2 --steps 20 -o fused_x2.png

Without --infrared/--visible it fuses TNO pair 01 of ../shared/data, downscaled to --size pixels wide (a real
low-resolution input), or, when that folder is absent, a synthetic drawn pair (the output says which). The model is
the package's shipped infrared-visible pipeline (`DEFAULT_MODEL`) unless --model names a saved folder or a Hub id.
"""

import argparse
import time

import PIL.Image
import torch

from _common import DEVICE, default_pair, downscale, load_pipeline
from fsdiff_diffusers import DEFAULT_MODEL


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Saved pipeline folder or Hub id.")
    parser.add_argument("--infrared", help="Infrared (or MRI) image; with --visible.")
    parser.add_argument("--visible", help="Visible (or CT/PET/SPECT) image of the same scene and size.")
    parser.add_argument("--size", type=int, default=None, help="Resize the inputs to this width first (default "
                        "pair: 160; your own images: used as they are).")  # fmt: skip
    parser.add_argument("--scale", type=float, default=4.0, help="Upscaling factor (any number >= 1).")
    parser.add_argument("--steps", type=int, default=10, help="Denoising steps.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=DEVICE)
    parser.add_argument("-o", "--output", default="fused.png")
    args = parser.parse_args(argv)
    if (args.infrared is None) != (args.visible is None):
        parser.error("Pass both --infrared and --visible, or neither (for the default pair).")
    return args


def main(argv: list[str] | None = None) -> str:
    """Fuse the pair and save it; returns the output path."""
    args = parse_args(argv)
    if args.infrared is None:
        infrared, visible, label = default_pair(args.size or 160)
    else:
        infrared, visible = PIL.Image.open(args.infrared), PIL.Image.open(args.visible)
        if args.size:
            infrared, visible = downscale(infrared, args.size), downscale(visible, args.size)
        label = f"{args.infrared} + {args.visible} ({visible.width}x{visible.height})"

    pipe = load_pipeline(args.model, args.device)
    start = time.perf_counter()
    fused = pipe(
        infrared=infrared,
        visible=visible,
        scale=args.scale,
        num_inference_steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
    ).images[0]
    fused.save(args.output)
    seconds = time.perf_counter() - start
    print(f"Fused {label} at x{args.scale:g} with {args.steps} steps in {seconds:.1f} s.")
    print(f"Saved {args.output} ({fused.width}x{fused.height})")
    return args.output


if __name__ == "__main__":
    main()
