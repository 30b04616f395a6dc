"""The FS-Diff pipeline (`FSDiffPipeline`), its output and the scheduler it ships with (`default_scheduler`)."""

from .pipeline_fsdiff import FSDiffPipeline, default_scheduler
from .pipeline_output import FSDiffPipelineOutput

__all__ = ["FSDiffPipeline", "FSDiffPipelineOutput", "default_scheduler"]
