"""One way to load a pipeline for the `fsdiff` command, the examples and the benchmarks: a shipped model's name, a
folder or a Hub id; the device and dtype by name; optionally another sampler by a short alias or a Diffusers class
name; and an error that says what to pass instead when there is no pipeline to load.

```py
>>> from fsdiff_diffusers.loading import load_pipeline

>>> pipe = load_pipeline("fsdiff-ir-vis", device="cpu", dtype="float32", scheduler="unipc")
```
"""

import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    from .pipelines.pipeline_fsdiff import FSDiffPipeline

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""Dtype names the command line, the examples, the benchmarks and the export script take."""

SCHEDULER_ALIASES = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "dpmsolver": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "pndm": "PNDMScheduler",
}
"""Short, case-insensitive sampler names, next to the Diffusers class names."""


def resolve_device(name: str | torch.device) -> torch.device:
    """A torch device by name: `auto` is CUDA, else MPS, else the CPU; a device that is absent is a `ValueError`."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device {name} was asked for, but this PyTorch ({torch.__version__}) sees no CUDA GPU; use "
            "--device auto or cpu, or install a CUDA build of PyTorch."
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA GPUs (cuda:0, ...).")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: Apple's MPS backend is not available here; use --device auto or cpu.")
    return device


def scheduler_class(name: str, scheduler: "SchedulerMixin") -> type:
    """A sampler class by alias (`SCHEDULER_ALIASES`) or class name, any case, out of `scheduler.compatibles`."""
    compatibles = {cls.__name__.lower(): cls for cls in scheduler.compatibles}
    wanted = SCHEDULER_ALIASES.get(name.lower(), name).lower()
    if wanted not in compatibles:
        raise ValueError(
            f"unknown scheduler '{name}'; use one of {', '.join(SCHEDULER_ALIASES)} or a class name compatible with "
            f"this model: {', '.join(sorted(cls.__name__ for cls in compatibles.values()))}."
        )
    return compatibles[wanted]


def load_pipeline(
    model: str | os.PathLike,
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype | None = None,
    scheduler: str | None = None,
) -> "FSDiffPipeline":
    """
    Load an [`FSDiffPipeline`].

    Args:
        model (`str` or `os.PathLike`): a shipped model's name (`fsdiff-ir-vis`, `fsdiff-medical`), a folder written
            by `save_pretrained`, or a Hub id.
        device (`str` or `torch.device`, *optional*): where to move it (`"auto"` picks CUDA, MPS or the CPU); `None`
            leaves it where it loads.
        dtype (`str` or `torch.dtype`, *optional*): weights dtype, a `DTYPES` name or a torch dtype; `None` keeps the
            saved one.
        scheduler (`str`, *optional*): another sampler, by alias or class name, made with `from_config` of the saved
            one, so that it keeps the prediction type, beta schedule and thresholding the model was trained with.

    Raises:
        `ValueError`: with what to pass instead, for a folder without a pipeline, an unknown name, a pipeline that
            fails to load, an absent device or an unknown scheduler.
    """
    from .pipelines.pipeline_fsdiff import FSDiffPipeline

    if isinstance(dtype, str):
        dtype = DTYPES[dtype]
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "model_index.json")):
        raise ValueError(
            f"the model folder '{model}' holds no model_index.json: pass a folder written by "
            "FSDiffPipeline.save_pretrained, the name of a shipped model (fsdiff-ir-vis, fsdiff-medical) or a Hub id "
            "such as org/name."
        )
    try:
        pipe = FSDiffPipeline.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load the model '{model}': {error}") from error
    if scheduler:
        pipe.scheduler = scheduler_class(scheduler, pipe.scheduler).from_config(pipe.scheduler.config)
    return pipe if device is None else pipe.to(resolve_device(device))
