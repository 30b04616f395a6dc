"""The FS-Diff pipeline (`FSDiffPipeline`), its output and the scheduler it ships with (`default_scheduler`).

Imported on first use (PEP 562), like the package's top level, so that the command line's argument parsers can read
the pipeline's defaults (`tiling`, `checks`) without importing Diffusers.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "FSDiffPipeline": ".pipeline_fsdiff",
    "default_scheduler": ".pipeline_fsdiff",
    "FSDiffPipelineOutput": ".pipeline_output",
}
"""Public name -> the module that defines it."""

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
