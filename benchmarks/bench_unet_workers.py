"""What `bench_unet.py` measures, in its worker subprocesses: the instruments (peak resident memory, FLOP counts, the
selective scan's share of a step, the U-Net's own convolutions as a plain stack) and the two workers, one for the
memory and one for the timings of a size."""

import ctypes
import gc
import resource
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fsdiff_diffusers.models import bimamba
from fsdiff_diffusers.models.bimamba import BidirectionalMambaBlock
from fsdiff_diffusers.models.clarity_mamba import ClarityMambaEncoder
from fsdiff_diffusers.models.unet_fsdiff import FSDiffUNet2DModel

TIMESTEP = 500.5


# ----------------------------------------------------------------------------------------------- memory measurement


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_increase(fn) -> tuple[float, str]:
    """MiB of resident memory that `fn()` adds at its peak, and the method used."""
    gc.collect()
    _malloc_trim()
    if _reset_peak_rss():
        before = _status_kb("VmRSS")
        fn()
        return (_status_kb("VmHWM") - before) / 1024, "clear_refs"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, "ru_maxrss"


# ------------------------------------------------------------------------------------------------------ instruments


class ScanTimer:
    """Wall time of `bidirectional_selective_scan` calls and of `BidirectionalMambaBlock` forwards, per step."""

    def __init__(self, model: nn.Module):
        self.scan = 0.0
        self.mamba = 0.0
        self.calls = 0
        self._original = bimamba.bidirectional_selective_scan
        self._starts = {}

        def timed_scan(*args, **kwargs):
            start = time.perf_counter()
            out = self._original(*args, **kwargs)
            self.scan += time.perf_counter() - start
            self.calls += 1
            return out

        bimamba.bidirectional_selective_scan = timed_scan
        self._handles = []
        for module in model.modules():
            if isinstance(module, BidirectionalMambaBlock):
                self._handles.append(module.register_forward_pre_hook(self._pre))
                self._handles.append(module.register_forward_hook(self._post))

    def _pre(self, module, args):
        self._starts[id(module)] = time.perf_counter()

    def _post(self, module, args, output):
        self.mamba += time.perf_counter() - self._starts.pop(id(module))

    def reset(self):
        self.scan = self.mamba = 0.0
        self.calls = 0


def capture_conv_inputs(model: nn.Module, run) -> list[tuple[nn.Conv2d, torch.Size]]:
    """The model's `Conv2d` layers in call order, with the input shape each call saw."""
    calls = []
    handles = [
        module.register_forward_pre_hook(lambda module, args: calls.append((module, args[0].shape)))
        for module in model.modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return calls


def count_flops(run) -> tuple[float, float]:
    """(all FLOPs, convolution FLOPs) of `run()`."""
    with FlopCounterMode(display=False) as counter:
        run()
    per_op = counter.get_flop_counts().get("Global", {})
    conv = sum(v for op, v in per_op.items() if "convolution" in str(op))
    return float(counter.get_total_flops()), float(conv)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------------------------------------- workers


def parse_size(size: str) -> tuple[int, int]:
    """'WxH' -> (height, width)."""
    width, height = (int(v) for v in size.lower().split("x"))
    return height, width


def setup(size: str):
    """Default U-Net and encoder (random init, eval) and the inputs of one `size`."""
    height, width = parse_size(size)
    torch.manual_seed(0)
    unet = FSDiffUNet2DModel().eval()
    encoder = ClarityMambaEncoder().eval()
    conditions = torch.rand(1, 2, height, width) * 2 - 1
    sample = torch.cat([torch.randn(1, 1, height, width), conditions], dim=1)
    return unet, encoder, conditions, sample


@torch.no_grad()
def memory_worker(size: str) -> dict:
    """Peak memory of the encoder call and of one U-Net step; run with a fixed glibc mmap threshold (see main)."""
    unet, encoder, conditions, sample = setup(size)
    tiny = conditions[..., :64, :64]  # one-off initialisation, at a size whose allocations do not matter
    out = encoder(tiny)
    unet(sample[..., :64, :64], TIMESTEP, out.context, out.features)
    holder = {}
    encoder_mib, method = peak_rss_increase(lambda: holder.update(out=encoder(conditions)))
    out = holder.pop("out")
    step_mib, _ = peak_rss_increase(lambda: unet(sample, TIMESTEP, out.context, out.features))
    return dict(encoder_mib=encoder_mib, step_mib=step_mib, memory_method=method)


@torch.no_grad()
def timing_worker(size: str, repeats: int) -> dict:
    unet, encoder, conditions, sample = setup(size)

    # Encoder: once under the FLOP counter (also the warm-up), once timed.
    encoder_flops, _ = count_flops(lambda: encoder(conditions))
    start = time.perf_counter()
    encoder_out = encoder(conditions)
    encoder_s = time.perf_counter() - start
    context, features = encoder_out.context, encoder_out.features
    del encoder_out

    def step():
        return unet(sample, TIMESTEP, context, features).sample

    # Warm-up 1: FLOPs and the conv input shapes. Warm-up 2: peak RSS with the default allocator.
    conv_calls = []
    flops, conv_flops = count_flops(lambda: conv_calls.extend(capture_conv_inputs(unet, step)))
    default_malloc_mib, _ = peak_rss_increase(step)

    # The plain conv stack: the U-Net's own Conv2d layers back to back, on inputs of the shapes they see.
    stack = [(module, torch.randn(shape)) for module, shape in conv_calls]

    def conv_stack():
        for module, x in stack:
            module(x)

    stack_flops, _ = count_flops(conv_stack)
    conv_stack()  # warm-up

    scan_timer = ScanTimer(unet)
    unet_times, stack_times, scan_times, mamba_times = [], [], [], []
    for _ in range(repeats):  # interleaved: U-Net step, conv stack, U-Net step, ...
        scan_timer.reset()
        unet_times.append(timed(step))
        scan_times.append(scan_timer.scan)
        mamba_times.append(scan_timer.mamba)
        stack_times.append(timed(conv_stack))

    median = statistics.median
    height, width = parse_size(size)
    return dict(
        size=size,
        height=height,
        width=width,
        repeats=repeats,
        unet_params=sum(p.numel() for p in unet.parameters()),
        encoder_params=sum(p.numel() for p in encoder.parameters()),
        unet_s=median(unet_times),
        unet_times=unet_times,
        flops=flops,
        conv_flops=conv_flops,
        stack_s=median(stack_times),
        stack_times=stack_times,
        stack_flops=stack_flops,
        num_convs=len(stack),
        # per interleaved pair
        ratio=median((flops / u) / (stack_flops / s) for u, s in zip(unet_times, stack_times)),
        best_ratio=(flops / min(unet_times)) / (stack_flops / min(stack_times)),
        default_malloc_mib=default_malloc_mib,
        scan_s=median(scan_times),
        scan_share=median(sc / u for sc, u in zip(scan_times, unet_times)),
        mamba_s=median(mamba_times),
        mamba_share=median(m / u for m, u in zip(mamba_times, unet_times)),
        encoder_s=encoder_s,
        encoder_flops=encoder_flops,
        threads=torch.get_num_threads(),
    )
