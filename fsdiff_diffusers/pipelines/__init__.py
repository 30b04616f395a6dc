from .pipeline_fsdiff import FSDiffPipeline, default_scheduler
