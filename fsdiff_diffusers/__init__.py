"""FS-Diff: simultaneous multimodal image fusion and super-resolution as a Diffusers pipeline."""

from .models.clarity_mamba import ClarityMambaEncoder
from .models.unet_fsdiff import FSDiffUNet2DModel
from .pipelines.pipeline_fsdiff import FSDiffPipeline, default_scheduler
from .weights import DEFAULT_MODEL, IR_VIS_MODEL, MEDICAL_MODEL, SHIPPED_MODELS

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_MODEL",
    "IR_VIS_MODEL",
    "MEDICAL_MODEL",
    "SHIPPED_MODELS",
    "ClarityMambaEncoder",
    "FSDiffPipeline",
    "FSDiffUNet2DModel",
    "default_scheduler",
]
