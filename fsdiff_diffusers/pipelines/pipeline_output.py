"""What `FSDiffPipeline` returns: the fused images and, when asked for, the encoder's clarity maps."""

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput


@dataclass
class FSDiffPipelineOutput(ImagePipelineOutput):
    r"""
    Output of [`FSDiffPipeline`] (an [`ImagePipelineOutput`], so code that reads `images` keeps working).

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The fused images, in the form `output_type` asked for (see [`~image_processor.postprocess`]).
        clarity (`np.ndarray` of shape `(batch, height, width, num_modalities)` or `torch.Tensor` of shape
            `(batch, num_modalities, height, width)`, *optional*):
            With `return_clarity=True`: the [`ClarityMambaEncoder`]'s predicted clarity of each source (infrared or
            MRI first) in (0, 1) at the output size, 1 where that source is sharp and clean. A tensor for
            `output_type="pt"`, else a float32 array. `None` otherwise.
    """

    clarity: np.ndarray | torch.Tensor | None = None

