#!/usr/bin/env python
"""Make the README's gallery: FS-Diff next to its inputs and the best classical baseline on real test pairs.

    python examples/make_gallery.py                     # -> examples/gallery/*.png and the README's gallery table

For the first test pair of each of [`GALLERY`]'s datasets of the shared data (`../shared/data`, or --data or
$FSDIFF_DATA), as in the quality report (benchmarks/RESULTS.md): the sources are cropped to a multiple of 4 and
downscaled x4 with PIL's bicubic filter (here in colour); those low-resolution inputs are upsampled x4 with PIL's
bicubic filter, fused by "bicubic + laplacian_max" (the best baseline there), and fused by the shipped model of their
modality at its default steps, seed 0 (see `fsdiff_diffusers.comparison.compare`). The centre --crop x --crop pixels
of each are written as small PNGs, and the table between the README's `<!-- gallery:start -->` and
`<!-- gallery:end -->` is rewritten.
"""

import argparse
from pathlib import Path

import numpy as np
import PIL.Image

from _common import REPO_ROOT, load_pipeline
from fsdiff_diffusers import protocol
from fsdiff_diffusers.comparison import BASELINE_METHOD, compare
from fsdiff_diffusers.shared_data import find_data_dir, split_pair

GALLERY = {"TNO": "fsdiff-ir-vis", "MSRS": "fsdiff-ir-vis", "Harvard_MRI_SPECT": "fsdiff-medical"}
"""Datasets whose first test pair is shown, and the shipped model for each."""

SCALE = 4
GALLERY_DIR = REPO_ROOT / "examples" / "gallery"
README = REPO_ROOT / "README.md"
MARKERS = ("<!-- gallery:start -->", "<!-- gallery:end -->")
COLUMNS = {
    "infrared": "infrared / MRI (bicubic)",
    "visible": "visible / CT / PET / SPECT (bicubic)",
    "baseline": f"bicubic + {BASELINE_METHOD}",
    "fsdiff": "FS-Diff",
}
"""The images of each row (file suffix -> column heading)."""


def low_resolution(path: Path) -> np.ndarray:
    """The protocol's x4 input of one source, kept in colour: uint8 `(h, w, 3)`."""
    image = np.asarray(PIL.Image.open(path).convert("RGB"))
    return protocol.downscale(protocol.crop_to_multiple(image, SCALE), SCALE)


def centre_crop(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """The central `size` x `size` pixels of `image` (each side kept whole where it is shorter)."""
    left, top = max(0, (image.width - size) // 2), max(0, (image.height - size) // 2)
    return image.crop((left, top, min(image.width, left + size), min(image.height, top + size)))


def replace_gallery(table: str) -> None:
    """Puts `table` between the README's gallery markers."""
    text = README.read_text()
    if not all(marker in text for marker in MARKERS):
        raise SystemExit(f"{README} has no {' ... '.join(MARKERS)} section to write the gallery into.")
    before, rest = text.split(MARKERS[0], 1)
    README.write_text(f"{before}{MARKERS[0]}\n{table}\n{MARKERS[1]}{rest.split(MARKERS[1], 1)[1]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder (default: ../shared/data)")
    parser.add_argument("--crop", type=int, default=256, help="side of the centre crop shown, in pixels (256)")
    args = parser.parse_args(argv)
    data_dir = find_data_dir(args.data)
    if data_dir is None:
        raise SystemExit("the shared data folder was not found: pass --data DIR or set $FSDIFF_DATA.")

    GALLERY_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    for dataset, model in GALLERY.items():
        infrared, visible = split_pair(data_dir, dataset)
        pipe = load_pipeline(model, device="cpu")
        pipe.set_progress_bar_config(disable=True)
        result = compare(pipe, low_resolution(infrared), low_resolution(visible), scale=SCALE)
        images = dict(zip(COLUMNS, (result.infrared_bicubic, result.visible_bicubic, result.baseline, result.fused)))
        cells = [f"{dataset} {infrared.stem}<br>{' + '.join(path.parent.name for path in (infrared, visible))}"]
        for suffix, image in images.items():
            path = GALLERY_DIR / f"{dataset}_{infrared.stem}_{suffix}.png"
            centre_crop(image, args.crop).save(path, optimize=True)
            cells.append(f'<img src="{path.relative_to(README.parent)}" width="{args.crop * 3 // 4}">')
        rows.append("| " + " | ".join(cells) + " |")
        print(f"{dataset} {infrared.stem}: {result.input_size} -> {result.fused.size[::-1]} in {result.seconds:.1f} s")
    header = ["| pair (x4, test split) | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    replace_gallery("\n".join(header + rows))
    print(f"wrote {len(rows) * len(COLUMNS)} images to {GALLERY_DIR} and the gallery of {README}")


if __name__ == "__main__":
    main()
