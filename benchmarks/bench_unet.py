"""Cost of one denoising step of the default `FSDiffUNet2DModel` on CPU, against a plain stack of its own convolutions.

For each output size (default architecture, random init, float32, eval, no grad), in fresh subprocesses (one for the
memory, one for the timings):

1. seconds per U-Net step (x_t + 2 conditions, a float timestep, the encoder's context and features computed once
   beforehand), median of the repeats after a warm-up step;
2. GFLOP per step (`torch.utils.flop_counter.FlopCounterMode`: convolutions, matmuls and attention; element-wise
   ops, norms and the selective scan are not counted) and GFLOP per output megapixel;
3. peak resident memory added by a step (see `MEMORY_METHOD`);
4. achieved GFLOP/s, against the "plain conv stack": the U-Net's own `Conv2d` layers run back to back on inputs of the
   shapes they see in a step (captured with forward hooks), timed interleaved with the U-Net steps;
5. memory per output megapixel (is the step's memory linear in the pixels?);
6. time spent in `bidirectional_selective_scan` (and in the `BidirectionalMambaBlock`s as a whole) during each step;
7. the encoder's one-off cost (seconds, GFLOP, peak memory), once per image.

Usage: python benchmarks/bench_unet.py [--sizes 256x256 512x512 640x480 1024x1024] [--repeats 5] [--threads N]
Sizes are WxH (640x480 is 480 rows by 640 columns). Writes the "unet" section of RESULTS.md unless --no-write.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_unet_workers import memory_worker, parse_size, timing_worker  # noqa: E402
from results import machine_description, markdown_table, write_section  # noqa: E402

DEFAULT_SIZES = ("256x256", "512x512", "640x480", "1024x1024")
TARGET_CONV_RATIO = 0.60  # U-Net GFLOP/s >= 60 % of the plain conv stack's
TARGET_SCAN_SHARE = 0.10  # selective scan < 10 % of a step at 640x480
SCAN_TARGET_SIZE = "640x480"
LINEAR_TOLERANCE = 0.25  # memory per megapixel within +-25 % of its value at the largest size
MMAP_THRESHOLD = 64 * 1024  # bytes; fixed glibc mmap threshold of the memory subprocess
LARGE_PIXELS = 1_000_000  # sizes at or above this get at most 3 repeats


MEMORY_METHOD = (
    "peak RSS increase of the process during the call, in a fresh subprocess per size: after a warm-up at 64x64, "
    "`gc.collect()` and glibc `malloc_trim(0)`, the kernel's peak-RSS mark is reset "
    "(`echo 5 > /proc/self/clear_refs`) and the result is `VmHWM` after the call minus `VmRSS` before it. "
    f"That subprocess runs with `MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}`, so every allocation of 64 KiB or more is "
    "its own mmap, returned to the system when freed: the number is the peak of live tensor memory, free of "
    "allocator caching and fragmentation. "
    "The column \"default malloc\" is the same measurement in the timing subprocess (default glibc allocator, after "
    "one warm-up step at the size), i.e. what a user's process sees"
)


FALLBACK_METHOD = (
    "`ru_maxrss` increase over the call in a fresh subprocess (clear_refs not writable, so numbers after the first "
    "call in a process are lower bounds)"
)


def scan_version() -> str:
    """Which `selective_scan.py` was measured: its blob hash, and whether it differs from the committed one."""
    path = "fsdiff_diffusers/models/selective_scan.py"
    root = Path(__file__).resolve().parents[1]
    try:
        blob = subprocess.run(["git", "hash-object", path], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", path], cwd=root, check=False).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown version"
    return f"blob {blob.stdout.strip()[:10]}" + (", uncommitted changes" if dirty else ", as committed")


def _run_worker(args: list[str], env: dict | None = None) -> dict:
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"worker {args} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def run_size(size: str, repeats: int, threads: int | None) -> dict:
    """Memory in one fresh subprocess (fixed mmap threshold), then the timings in another (default allocator)."""
    height, width = parse_size(size)
    if height * width >= LARGE_PIXELS:
        repeats = min(repeats, 3)
    common = ["--sizes", size] + (["--threads", str(threads)] if threads else [])
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD))
    result = _run_worker(["--worker", "memory", *common], env=env)
    result.update(_run_worker(["--worker", "time", "--repeats", str(repeats), *common]))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="output sizes WxH")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per size (at most 3 from 1 MP)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    parser.add_argument("--worker", choices=("memory", "time"), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        size = args.sizes[0]
        result = memory_worker(size) if args.worker == "memory" else timing_worker(size, args.repeats)
        print("RESULT " + json.dumps(result), flush=True)
        return

    results = []
    for size in args.sizes:
        start = time.perf_counter()
        scan_file = scan_version()
        r = run_size(size, args.repeats, args.threads)
        r["load"] = os.getloadavg()[0]
        r["scan_file"] = scan_file if scan_file == scan_version() else "changed during this size"
        mp = r["height"] * r["width"] / 1e6
        r["mp"] = mp
        results.append(r)
        print(
            f"{size}: {r['unet_s']:.3f} s/step, {r['flops'] / 1e9:.1f} GFLOP, "
            f"{r['flops'] / 1e9 / r['unet_s']:.1f} GFLOP/s vs conv stack {r['stack_flops'] / 1e9 / r['stack_s']:.1f} "
            f"({r['ratio']:.0%}), {r['step_mib']:.0f} MiB (default malloc {r['default_malloc_mib']:.0f}), "
            f"scan {r['scan_share']:.1%}, "
            f"encoder {r['encoder_s']:.2f} s, load {r['load']:.1f}  [{time.perf_counter() - start:.0f} s]",
            flush=True,
        )

    headers = [
        "size (WxH)",
        "MP",
        "repeats",
        "U-Net s/step",
        "GFLOP/step",
        "GFLOP/MP",
        "U-Net GFLOP/s",
        "conv stack GFLOP/s",
        "U-Net / conv stack",
        "same, best/best",
        "step peak MiB",
        "MiB/MP",
        "step peak MiB, default malloc",
        "scan ms (% step)",
        "Mamba blocks ms (% step)",
        "encoder s",
        "encoder GFLOP",
        "encoder peak MiB",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r["size"],
                f"{r['mp']:.3f}",
                r["repeats"],
                f"{r['unet_s']:.3f}",
                f"{r['flops'] / 1e9:.1f}",
                f"{r['flops'] / 1e9 / r['mp']:.1f}",
                f"{r['flops'] / 1e9 / r['unet_s']:.1f}",
                f"{r['stack_flops'] / 1e9 / r['stack_s']:.1f}",
                f"{r['ratio']:.0%}",
                f"{r['best_ratio']:.0%}",
                f"{r['step_mib']:.0f}",
                f"{r['step_mib'] / r['mp']:.0f}",
                f"{r['default_malloc_mib']:.0f}",
                f"{r['scan_s'] * 1e3:.1f} ({r['scan_share']:.1%})",
                f"{r['mamba_s'] * 1e3:.1f} ({r['mamba_share']:.1%})",
                f"{r['encoder_s']:.2f}",
                f"{r['encoder_flops'] / 1e9:.1f}",
                f"{r['encoder_mib']:.0f}",
            ]
        )
    table = markdown_table(headers, rows)
    print()
    print(table)

    # Targets.
    ratios = {r["size"]: r["ratio"] for r in results}
    ratio_met = all(v >= TARGET_CONV_RATIO for v in ratios.values())
    largest = max(results, key=lambda r: r["mp"])
    ref = largest["step_mib"] / largest["mp"]
    deviations = {r["size"]: r["step_mib"] / r["mp"] / ref - 1 for r in results}
    linear_met = all(abs(v) <= LINEAR_TOLERANCE for v in deviations.values())
    if len(results) >= 2:  # least-squares line MiB = a + b * MP
        xs, ys = [r["mp"] for r in results], [r["step_mib"] for r in results]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        fit = f" Least-squares fit: {my - slope * mx:.0f} MiB + {slope:.0f} MiB/MP."
    else:
        fit = ""
    scan = next((r for r in results if r["size"] == SCAN_TARGET_SIZE), None)

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    first = results[0]
    methods = {r["memory_method"] for r in results}
    memory_method = MEMORY_METHOD if methods == {"clear_refs"} else FALLBACK_METHOD
    command = "python benchmarks/bench_unet.py"
    if args.sizes != list(DEFAULT_SIZES) or args.repeats != 5:
        command += f" --sizes {' '.join(args.sizes)} --repeats {args.repeats}"
    if args.threads:
        command += f" --threads {args.threads}"
    conv_share = statistics.fmean(r["conv_flops"] / r["flops"] for r in results)
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description()}. 1-minute load average after each size: "
        + ", ".join(f"{r['size']}: {r['load']:.1f}" for r in results)
        + " (above 2, other processes were sharing the 2 cores: absolute times are inflated, most for the many small "
        "ops of the scan; the U-Net/conv-stack ratio is taken over interleaved pairs to limit the effect).",
        "",
        f"Default `FSDiffUNet2DModel()` ({first['unet_params'] / 1e6:.2f} M parameters) and `ClarityMambaEncoder()` "
        f"({first['encoder_params'] / 1e6:.2f} M parameters), random init, float32, eval, `torch.no_grad()`, batch 1; "
        "fresh subprocesses per size. A step is one U-Net forward on x_t + 2 conditions with a float timestep and the "
        "encoder's context and features computed beforehand; times are medians over the repeats after a warm-up step.",
        "",
        table,
        "",
        "- GFLOP: `torch.utils.flop_counter.FlopCounterMode` (2 x multiply-adds of convolutions, matmuls and "
        "attention; element-wise ops, norms and the selective scan are not counted). Convolutions are "
        f"{conv_share:.0%} of the counted FLOPs of a step.",
        "- Conv stack: the U-Net's own `Conv2d` layers "
        f"({first['num_convs']} calls per step) run back to back on random inputs of the shapes they see in a step "
        "(captured with forward hooks), timed interleaved with the U-Net steps; the ratio is the median over the "
        "interleaved pairs of (U-Net GFLOP/s) / (conv stack GFLOP/s); \"best/best\" is the same ratio from the "
        "fastest U-Net step and the fastest conv stack run (the least disturbed by other processes).",
        f"- Memory: {memory_method}. The encoder's peak is measured like the step's, around its call.",
        "- Scan: wall time inside `bidirectional_selective_scan` (monkeypatched timer) and inside the "
        "`BidirectionalMambaBlock` forwards (hooks) during each timed step; the default U-Net has one Mamba block "
        "(middle block, stride 16). `selective_scan.py` measured: "
        + (
            results[0]["scan_file"]
            if len({r["scan_file"] for r in results}) == 1
            else ", ".join(f"{r['size']}: {r['scan_file']}" for r in results)
        )
        + ".",
        "- Encoder: one call after a warm-up call (it runs once per image, not per step).",
        "",
        "Targets:",
        "",
        f"- U-Net reaches >= {TARGET_CONV_RATIO:.0%} of the plain conv stack's GFLOP/s: {verdict(ratio_met)} ("
        + ", ".join(f"{k}: {v:.0%}" for k, v in ratios.items())
        + ").",
        f"- Memory linear in the pixels (MiB/MP within +-{LINEAR_TOLERANCE:.0%} of its value at {largest['size']}, "
        f"{ref:.0f} MiB/MP): {verdict(linear_met)} ("
        + ", ".join(f"{k}: {v:+.0%}" for k, v in deviations.items())
        + f").{fit}",
    ]
    if scan is not None:
        lines.append(
            f"- Selective scan < {TARGET_SCAN_SHARE:.0%} of a step at {SCAN_TARGET_SIZE}: "
            f"{verdict(scan['scan_share'] < TARGET_SCAN_SHARE)} ({scan['scan_s'] * 1e3:.1f} ms of "
            f"{scan['unet_s'] * 1e3:.0f} ms, {scan['scan_share']:.1%}; the whole Mamba block "
            f"{scan['mamba_share']:.1%})."
        )
    body = "\n".join(lines)
    if not args.no_write:
        write_section("unet", "## U-Net step (`bench_unet.py`)\n\n" + body)
        print("\nwrote section 'unet' of benchmarks/RESULTS.md")
    print()
    print(body)


if __name__ == "__main__":
    main()
