"""End-to-end fusion speed of the shipped models at their default settings on CPU: seconds per output megapixel.

One pipeline call as a user makes it (`pipe(infrared, visible, scale=4)`: the model's registered default steps and
scheduler, image loading excluded, colour handling and output conversion included), in float32 and in bfloat16, on
one CPU thread (`torch.set_num_threads(1)`) unless `--threads` says otherwise. Each size is timed `--repeats` times
after a warm-up call; the table gives the median. Inputs are real TNO pair 01 (downscaled to the input size) where
`../shared/data` is present, else the synthetic example pair.

For scale: a single-pass fusion CNN such as SeAFusion takes about 5.4 s per output megapixel on this kind of CPU
(issue 10's figure, the target FS-Diff's default settings should meet: at most 6 s/MP).

The pipeline feeds the models channels-last (NHWC) tensors (`fsdiff_diffusers.image_processor.nhwc`); the last rows
time the largest size of the first model both ways, calls alternating, to give that choice's speed-up side by side.

Usage: python benchmarks/bench_fuse.py [--sizes 160x120 320x240] [--scale 4] [--repeats 3] [--threads 1] [--no-write]
"""

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

import PIL.Image
import torch

from fsdiff_diffusers import SHIPPED_MODELS
from fsdiff_diffusers.example_pair import example_pair
from fsdiff_diffusers.loading import load_pipeline
from results import machine_description, markdown_table, write_section

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGET = 6.0
"""Seconds per output megapixel the default settings should stay under."""


def input_pair(width: int, height: int) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """TNO pair 01 resized to `width` x `height` (bicubic), or the synthetic example pair of that size."""
    paths = [DATA_DIR / "TNO" / folder / "01.png" for folder in ("ir", "vi")]
    if all(path.is_file() for path in paths):
        return tuple(PIL.Image.open(path).resize((width, height), PIL.Image.BICUBIC) for path in paths)
    return example_pair(width, height)


def timed_call(pipe, infrared, visible, scale: float) -> float:
    """Wall seconds of one `pipe(infrared, visible, scale=scale)` call (seed 0)."""
    start = time.perf_counter()
    pipe(infrared, visible, scale=scale, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def seconds_per_call(pipe, infrared, visible, scale: float, repeats: int) -> float:
    """Median wall seconds of `repeats` calls after one warm-up call."""
    timed_call(pipe, infrared, visible, scale)
    return statistics.median(timed_call(pipe, infrared, visible, scale) for _ in range(repeats))


@contextmanager
def model_inputs(layout: str) -> Iterator[None]:
    """Within it the pipeline feeds its models tensors in `layout`: "NHWC" (channels-last, what it does) or "NCHW"
    (contiguous, what it did before)."""
    with ExitStack() as stack:
        if layout == "NCHW":
            for module in ("pipeline_fsdiff", "tiling"):
                stack.enter_context(mock.patch(f"fsdiff_diffusers.pipelines.{module}.nhwc", torch.Tensor.contiguous))
        yield


def layout_seconds(pipe, infrared, visible, scale: float, repeats: int) -> dict[str, float]:
    """Median wall seconds per call with channels-last and with contiguous model inputs, after a warm-up call each;
    the two layouts' calls alternate so that both see the same machine load."""
    times = {"NHWC": [], "NCHW": []}
    for round_ in range(repeats + 1):
        for layout, values in times.items():
            with model_inputs(layout):
                seconds = timed_call(pipe, infrared, visible, scale)
            if round_:
                values.append(seconds)
    return {layout: statistics.median(values) for layout, values in times.items()}


def layout_difference(pipe, infrared, visible, scale: float) -> float:
    """Largest difference, in grey levels, between the outputs of one call per layout (same seed)."""
    images = []
    for layout in ("NHWC", "NCHW"):
        with model_inputs(layout):
            generator = torch.Generator().manual_seed(0)
            images.append(pipe(infrared, visible, scale=scale, generator=generator, output_type="np").images[0])
    return float(abs(images[0] - images[1]).max() * 255)


def main(argv: list[str] | None = None) -> tuple[list[list[str]], list[list[str]]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", nargs="+", default=list(SHIPPED_MODELS), help="shipped model names, folders or Hub ids"
    )
    parser.add_argument("--sizes", nargs="+", default=["160x120", "320x240"], help="input sizes WxH")
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows, layout_rows = [], []
    for model in args.models:
        for dtype in ("float32", "bfloat16"):
            pipe = load_pipeline(model, "cpu", dtype)
            pipe.set_progress_bar_config(disable=True)
            steps, scheduler = pipe.default_num_inference_steps, type(pipe.scheduler).__name__
            for size in args.sizes:
                width, height = (int(side) for side in size.split("x"))
                infrared, visible = input_pair(width, height)
                seconds = seconds_per_call(pipe, infrared, visible, args.scale, args.repeats)
                megapixels = round(width * args.scale) * round(height * args.scale) / 1e6
                rows.append([model, dtype, f"{steps} ({scheduler})", f"{size} -> x{args.scale:g}",
                             f"{megapixels:.2f}", f"{seconds:.2f}", f"{seconds / megapixels:.2f}"])  # fmt: skip
                print(rows[-1], flush=True)
            if model == args.models[0]:  # the layout comparison: the first model, the largest size
                seconds = layout_seconds(pipe, infrared, visible, args.scale, args.repeats)
                difference = layout_difference(pipe, infrared, visible, args.scale)
                layout_rows.append([model, dtype, f"{size} -> x{args.scale:g}", f"{seconds['NHWC']:.2f}",
                                    f"{seconds['NCHW']:.2f}", f"{seconds['NCHW'] / seconds['NHWC']:.2f}x",
                                    f"{difference:.3f}"])  # fmt: skip
                print(layout_rows[-1], flush=True)
    worst = max(float(row[-1]) for row in rows)
    headers = ["model", "dtype", "default steps (scheduler)", "input", "output MP", "s / call", "s / output MP"]
    layout_headers = ["model", "dtype", "input", "NHWC s / call", "NCHW s / call", "NHWC speed-up", "max diff."]
    body = f"""## End-to-end fusion speed at the default settings (`bench_fuse.py`)

Command: `python benchmarks/bench_fuse.py --sizes {" ".join(args.sizes)} --scale {args.scale:g} \
--repeats {args.repeats} --threads {args.threads}`

Machine: {machine_description()}.

One `pipe(infrared, visible, scale={args.scale:g})` call at the model's registered defaults (median of {args.repeats}
after a warm-up), loading excluded. Target: at most {TARGET:g} s per output megapixel (a single-pass fusion CNN such
as SeAFusion takes about 5.4 s/MP on this kind of CPU). Slowest row: {worst:.2f} s/MP, target
{"met" if worst <= TARGET else "MISSED"}.

{markdown_table(headers, rows)}

Model inputs in channels-last (NHWC) memory, as the pipeline passes them, against contiguous (NCHW) ones, as it
did before: median of {args.repeats} calls each, the two alternating; the last column is the largest difference
between the two layouts' outputs (same seed), in grey levels.

{markdown_table(layout_headers, layout_rows)}
"""
    print(body)
    if not args.no_write:
        write_section("fuse_speed", body)
    return rows, layout_rows


if __name__ == "__main__":
    main()
