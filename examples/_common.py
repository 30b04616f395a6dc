"""Helpers shared by the examples: where the data is, the default pair, loading a pipeline with a clear error."""

import os
from pathlib import Path

import PIL.Image
import torch

from fsdiff_diffusers import FSDiffPipeline, loading
from fsdiff_diffusers.example_pair import example_pair

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
"""The shared image pairs beside the checkout (`../shared/data`); optional."""

DEFAULT_PAIR = ("TNO", "01.png")
"""The real pair the examples fuse when none is given: TNO scene 01 (768x576, a house, a fence, a person)."""

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def downscale(image: PIL.Image.Image, width: int) -> PIL.Image.Image:
    """Bicubic resize of `image` to `width` pixels wide, keeping its aspect ratio."""
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), PIL.Image.BICUBIC)


def default_pair(width: int = 160) -> tuple[PIL.Image.Image, PIL.Image.Image, str]:
    """
    A low-resolution infrared + visible pair to try the pipeline on, and a label saying what it is.

    The real TNO pair 01 of `../shared/data`, downscaled to `width` pixels wide, when that folder is there; otherwise
    the synthetic scene of [`~fsdiff_diffusers.example_pair.example_pair`] (drawn, not real data) at `width` x 3/4.
    """
    folder, name = DEFAULT_PAIR
    infrared_path, visible_path = (SHARED_DATA / folder / "ir" / name, SHARED_DATA / folder / "vi" / name)
    if infrared_path.is_file() and visible_path.is_file():
        infrared = downscale(PIL.Image.open(infrared_path).convert("L"), width)
        visible = downscale(PIL.Image.open(visible_path).convert("RGB"), width)
        label = f"the real pair {folder}/{name} of {SHARED_DATA}, downscaled to {visible.width}x{visible.height}"
        return infrared, visible, label
    infrared, visible = example_pair(width=width, height=round(width * 3 / 4))
    label = (
        f"a SYNTHETIC pair (fsdiff_diffusers.example_pair: a drawn scene, not real data; {SHARED_DATA} not found), "
        f"{visible.width}x{visible.height}"
    )
    return infrared, visible, label


def load_pipeline(
    model: str | os.PathLike, device: str | None = DEVICE, dtype: torch.dtype | None = None
) -> FSDiffPipeline:
    """[`fsdiff_diffusers.loading.load_pipeline`], its error message as the example's exit message."""
    try:
        return loading.load_pipeline(model, device, dtype)
    except ValueError as error:
        raise SystemExit(str(error)) from error
