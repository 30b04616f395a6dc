"""FS-Diff: simultaneous multimodal image fusion and super-resolution as a Diffusers pipeline.

The public names are imported on first use (PEP 562), so that `import fsdiff_diffusers.cli` (the `fsdiff` command's
`--help` and argument errors) does not pay for importing Diffusers and Transformers.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ClarityMambaEncoder": ".models.clarity_mamba",
    "FSDiffUNet2DModel": ".models.unet_fsdiff",
    "FSDiffPipeline": ".pipelines.pipeline_fsdiff",
    "FSDiffPipelineOutput": ".pipelines.pipeline_output",
    "default_scheduler": ".pipelines.pipeline_fsdiff",
    "DEFAULT_MODEL": ".weights",
    "IR_VIS_MODEL": ".weights",
    "MEDICAL_MODEL": ".weights",
    "SHIPPED_MODELS": ".weights",
}
"""Public name -> the module that defines it."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
