from .clarity_mamba import ClarityMambaEncoder, ClarityMambaEncoderOutput
from .unet_fsdiff import FSDiffUNet2DModel, FSDiffUNet2DOutput
