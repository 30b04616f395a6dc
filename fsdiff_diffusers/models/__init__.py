"""FS-Diff's models: the conditional denoiser (`FSDiffUNet2DModel`) and the clarity-aware source encoder
(`ClarityMambaEncoder`), with the bidirectional Mamba blocks and selective scan they share."""

from .clarity_mamba import ClarityMambaEncoder, ClarityMambaEncoderOutput
from .unet_fsdiff import FSDiffUNet2DModel, FSDiffUNet2DOutput

__all__ = ["ClarityMambaEncoder", "ClarityMambaEncoderOutput", "FSDiffUNet2DModel", "FSDiffUNet2DOutput"]
