"""The FS-Diff Diffusers pipeline (`FSDiffPipeline`) and the scheduler it ships with (`default_scheduler`)."""

from .pipeline_fsdiff import FSDiffPipeline, default_scheduler

__all__ = ["FSDiffPipeline", "default_scheduler"]
