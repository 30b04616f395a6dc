"""The FS-Diff pipeline (`FSDiffPipeline`), its output and the scheduler it ships with (`default_scheduler`).

Imported on first use (PEP 562), like the package's top level, so that the command line's argument parsers can read
the pipeline's defaults (`tiling`, `checks`) without importing Diffusers.
"""

import importlib
from typing import Any

_EXPORTS = {
    "FSDiffPipeline": ".pipeline_fsdiff",
    "default_scheduler": ".pipeline_fsdiff",
    "FSDiffPipelineOutput": ".pipeline_output",
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
