"""FS-Diff: simultaneous multimodal image fusion and super-resolution as a Diffusers pipeline.

The public names are imported on first use (PEP 562), so that `import fsdiff_diffusers.cli` (the `fsdiff` command's
`--help` and argument errors) does not pay for importing Diffusers and Transformers.
"""

from .lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
