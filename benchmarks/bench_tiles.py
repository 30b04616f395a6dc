"""Tiled inference on the CPU: peak memory against output size, seams along the tile borders, agreement with one pass.

Each fusion runs in a process of its own (`--worker`), so that its peak resident memory (`ru_maxrss`) is that call's
alone: the figure includes Python, torch and the loaded shipped infrared-visible model (float32, its default step and
scheduler), and the process's memory after loading is shown beside it. The input is a real pair (LLVIP_extra 010002,
train split: this benchmark chooses nothing) cut to 16:9 and resized to the input size, then fused at --scale 2, 4, 8.

Seams: the mean absolute luminance gradient across every tile border (the first and last row or column of every tile
that has a neighbour there, in output pixels) of the tiled 3840x2160 output, divided by the same of the one-pass
output of the same image and seed: the image's own edges cancel (a single line's gradient energy varies several-fold
with the content), a seam would add energy. Target: within 5 %.

Usage: python benchmarks/bench_tiles.py [--input 960x540] [--threads 1] [--no-write]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image

from results import machine_description, markdown_table, write_section

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
FIGURE = Path(__file__).with_name("figures") / "tiling_seams.png"
PEAK_TARGET_GIB = 3.0
SEAM_TARGET = 0.05
AGREEMENT_TARGET = 1.0
"""Mean absolute difference, in grey levels, allowed between a tiled and an untiled output of one image."""


def input_pair(width: int, height: int) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """LLVIP_extra pair 010002 (1280x1024) cut to `width:height` around its centre and resized (bicubic)."""
    images = []
    for folder in ("ir", "vi"):
        image = PIL.Image.open(DATA_DIR / "LLVIP_extra" / folder / "010002.jpg")
        crop_height = round(image.width * height / width)
        top = (image.height - crop_height) // 2
        images.append(image.crop((0, top, image.width, top + crop_height)).resize((width, height), PIL.Image.BICUBIC))
    return images[0], images[1]


def worker(args: argparse.Namespace) -> None:
    """One fusion in this process: prints a JSON line of its timings and memory, saves the output's luminance."""
    import torch

    from fsdiff_diffusers import FSDiffPipeline

    torch.set_num_threads(args.threads)
    pipe = FSDiffPipeline.from_pretrained("fsdiff-ir-vis")
    pipe.set_progress_bar_config(disable=True)
    width, height = (int(side) for side in args.input.split("x"))
    infrared, visible = input_pair(width, height)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tile_size = None if args.tile_size == "auto" else int(args.tile_size)
    start = time.perf_counter()
    fused = pipe(infrared, visible, scale=args.scale, tile_size=tile_size, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    output = fused.images[0]
    np.save(args.save, np.asarray(output.convert("YCbCr"))[..., 0])
    canvas = pipe.canvas_size(output.height, output.width)
    tile = pipe.tile_size_for((height, width), (output.height, output.width), 1, torch.device("cpu"), tile_size)
    print(json.dumps({
        "seconds": seconds, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "loaded": loaded,
        "tile_size": tile, "canvas": canvas, "margin": pipe.unet.downsample_factor,
    }))  # fmt: skip


def run_worker(input_size: str, scale: float, tile_size: str, threads: int, save: Path) -> dict:
    """Run [`worker`] in a new process and return what it printed."""
    command = [sys.executable, __file__, "--worker", "--input", input_size, "--scale", str(scale)]
    command += ["--tile-size", tile_size, "--threads", str(threads), "--save", str(save)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def border_lines(result: dict) -> tuple[list[int], list[int]]:
    """The output rows and columns where a tile of the call starts or stops beside a neighbour."""
    from fsdiff_diffusers.pipelines.tiling import DEFAULT_TILE_OVERLAP, tile_spans

    if result["tile_size"] is None:
        return [], []
    lines = []
    for length in result["canvas"]:
        spans = tile_spans(length, result["tile_size"], DEFAULT_TILE_OVERLAP, result["margin"])
        edges = {edge for start, stop in spans for edge in (start, stop) if 0 < edge < length}
        lines.append(sorted(edge - result["margin"] for edge in edges))
    return lines[0], lines[1]


def gradient_energy(luminance: np.ndarray, rows: list[int], cols: list[int]) -> tuple[float, float]:
    """The mean |gradient| across the given rows and columns (between each line and the one before it, and between
    it and the one after), and across all other rows and columns."""
    image = luminance.astype(np.float64)
    across = []
    for axis, lines in ((1, cols), (0, rows)):
        profile = np.abs(np.diff(image, axis=axis)).mean(axis=1 - axis)  # [i] between lines i and i + 1
        at = np.zeros(profile.shape, dtype=bool)
        at[[index for line in lines for index in (line - 1, line) if 0 <= index < profile.size]] = True
        across.append((profile[at], profile[~at]))
    at_borders = np.concatenate([pair[0] for pair in across]).mean()
    elsewhere = np.concatenate([pair[1] for pair in across]).mean()
    return float(at_borders), float(elsewhere)


def save_figure(tiled: np.ndarray, untiled: np.ndarray, rows: list[int], cols: list[int]) -> None:
    """A 384x384 crop around the first tile corner: tiled, untiled, and 10x their difference, side by side; white ticks
    on the edges of each crop point at the tile borders."""
    top, left = max(0, rows[0] - 192), max(0, cols[0] - 192)
    crops = [image[top : top + 384, left : left + 384].astype(np.float64) for image in (tiled, untiled)]
    crops.append(np.clip(128 + 10 * (crops[0] - crops[1]), 0, 255))
    for crop in crops:
        for row in (line - top for line in rows if 0 <= line - top < 384):
            crop[row, :6] = crop[row, -6:] = 255
        for col in (line - left for line in cols if 0 <= line - left < 384):
            crop[:6, col] = crop[-6:, col] = 255
    gap = np.full((384, 8), 255)
    strip = np.concatenate([crops[0], gap, crops[1], gap, crops[2]], axis=1)
    FIGURE.parent.mkdir(exist_ok=True)
    PIL.Image.fromarray(strip.astype(np.uint8)).save(FIGURE, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default="960x540", help="input size WxH (default: 960x540)")
    parser.add_argument("--scales", nargs="+", type=float, default=[2, 4, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--tile-size", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    scratch = Path(tempfile.mkdtemp(prefix="bench_tiles_"))
    runs = [(scale, "auto") for scale in args.scales] + [(args.scales[0], "1024"), (4.0, "100000")]
    rows, outputs = [], {}
    for scale, tile_size in runs:
        save = scratch / f"x{scale:g}_{tile_size}.npy"
        result = run_worker(args.input, scale, tile_size, args.threads, save)
        outputs[scale, tile_size] = (np.load(save), result)
        output = np.load(save)
        tiles = "one pass" if result["tile_size"] is None else f"{result['tile_size']} (asked: {tile_size})"
        rows.append([f"{output.shape[1]}x{output.shape[0]}", f"{output.size / 1e6:.1f}", tiles,
                     f"{result['peak'] / 2**30:.2f}", f"{result['loaded'] / 2**30:.2f}",
                     f"{result['seconds']:.0f}"])  # fmt: skip
        print(rows[-1], flush=True)

    tiled, tiled_result = outputs[4.0, "auto"]
    untiled, _ = outputs[4.0, "100000"]
    border_rows, border_cols = border_lines(tiled_result)
    (tiled_borders, tiled_elsewhere), (one_pass_borders, one_pass_elsewhere) = (
        gradient_energy(image, border_rows, border_cols) for image in (tiled, untiled)
    )
    seams, elsewhere = tiled_borders / one_pass_borders - 1, tiled_elsewhere / one_pass_elsewhere - 1
    save_figure(tiled, untiled, border_rows, border_cols)
    small_tiled, small_untiled = outputs[args.scales[0], "1024"][0], outputs[args.scales[0], "auto"][0]
    agreement = float(np.abs(small_tiled.astype(np.float64) - small_untiled).mean())
    peaks = {(row[0], row[2] == "one pass"): float(row[3]) for row in rows}
    peak_4k = peaks["3840x2160", False]
    slope = (peaks["7680x4320", False] - peak_4k) / (33.2 - 8.3)
    one_pass_slope = (peaks["3840x2160", True] - peaks["1920x1080", True]) / (8.3 - 2.1)
    headers = ["output", "MP", "tile size", "peak GiB", "after loading GiB", "s"]
    body = f"""## Tiled inference: memory, seams and agreement (`bench_tiles.py`)

Command: `python benchmarks/bench_tiles.py --input {args.input} --scales {" ".join(f"{s:g}" for s in args.scales)} \
--threads {args.threads}`

Machine: {machine_description()}.

The shipped infrared-visible model at its defaults (float32), one process per row; peak = the process's peak resident
memory, Python, torch and the model included. Tiling is automatic above 6 MP (tiles of up to 1024, overlap 128); the
last rows force tiles on a 2 MP output and one pass on the 8 MP one for comparison. The seconds are wall time on a
machine shared with other jobs: a record of the run, not a speed comparison (`bench_fuse.py` measures speed).

{markdown_table(headers, rows)}

- 3840x2160 with tiles: peak {peak_4k:.2f} GiB, target at most {PEAK_TARGET_GIB:g} GiB:
  {"met" if peak_4k <= PEAK_TARGET_GIB else "MISSED"}.
- Peak memory against output size with tiles: {slope:.3f} GiB per output megapixel from 3840x2160 to 7680x4320 (one
  pass: {one_pass_slope:.3f} GiB/MP). The tiles' share is flat; what still grows is the whole-image tensors a call keeps
  (the upsampled sources, the noise and sample, the residual base, the scheduler's state and the output, about
  {slope * 2**30 / 2**20:.0f} bytes per pixel), so "flat" holds for the models' activations, not for the whole
  process.
- Seams at 3840x2160: gradient energy across the {len(border_rows)} row and {len(border_cols)} column tile borders of
  the tiled output is {100 * seams:+.1f} % of the one-pass output's across the same lines ({100 * elsewhere:+.1f} %
  across all other lines), target within {100 * SEAM_TARGET:g} %: {"met" if abs(seams) <= SEAM_TARGET else "MISSED"}.
  Picture:
  `benchmarks/figures/tiling_seams.png` (tiled | one pass | 10x difference, around the first tile corner).
- Tiled and one-pass outputs of the {args.scales[0]:g}x image (small enough for one pass) differ by {agreement:.2f} grey
  levels on average (target below {AGREEMENT_TARGET:g}): {"met" if agreement < AGREEMENT_TARGET else "MISSED"}.
"""
    print(body)
    if not args.no_write:
        write_section("tiling", body)


if __name__ == "__main__":
    main()
