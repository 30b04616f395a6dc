"""Classical image fusion rules on `(B, C, H, W)` tensors in `[0, 1]`: the baselines of the quality tables
and the teachers (pseudo ground truths) of training.

```py
from fsdiff_diffusers.fusion import fuse

fused = fuse(infrared, visible, method="gff")  # or "laplacian", "mean", "max"
```
"""

from ..filters import box_filter
from .guided_filtering import guided_filter, guided_filter_fusion
from .methods import FUSION_METHODS, fuse
from .pyramid import laplacian_pyramid, laplacian_pyramid_fusion, reconstruct_laplacian_pyramid
from .rules import max_fusion, mean_fusion

__all__ = [
    "FUSION_METHODS",
    "box_filter",
    "fuse",
    "guided_filter",
    "guided_filter_fusion",
    "laplacian_pyramid",
    "laplacian_pyramid_fusion",
    "max_fusion",
    "mean_fusion",
    "reconstruct_laplacian_pyramid",
]
