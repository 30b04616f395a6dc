"""Image fusion metrics: EN, SD, SF, AG, MI, SCD, VIF, Qabf (and its per-source terms Q_ir, Q_vi), Nabf, SSIM,
MS-SSIM, CC and PSNR.

Implementations in the field disagree (MI in bits or nats, SSIM as a sum or a mean, three PSNRs).
The default ``convention="vifb"`` follows the MATLAB code of the VIFB benchmark (Zhang et al.,
CVPR-W 2020); ``convention="cddfuse"`` reproduces the Python ``Evaluator`` of CDDFuse / DDFM.
Images are floats in the 0..255 range, ``(H, W)`` or ``(H, W, C)`` (channels-last, numpy or torch);
colour images are evaluated per channel and averaged. Every function's docstring states its exact
definition, its behaviour on constant images and whether higher or lower is better.

Example:

```py
>>> from fsdiff_diffusers.metrics import evaluate, qabf
>>> scores = evaluate(fused, infrared, visible)  # {"EN": ..., "SD": ..., ..., "PSNR": ...}
>>> qabf(fused, infrared, visible)
```
"""

from .evaluation import HIGHER_IS_BETTER, METRICS, evaluate, metric_names
from .gradient import average_gradient, edge_transfer, nabf, qabf, spatial_frequency
from .information import entropy, mutual_information
from .statistics import correlation_coefficient, psnr, scd, standard_deviation
from .structural import ms_ssim, ssim
from .visual_fidelity import vif

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "average_gradient",
    "correlation_coefficient",
    "edge_transfer",
    "entropy",
    "evaluate",
    "metric_names",
    "ms_ssim",
    "mutual_information",
    "nabf",
    "psnr",
    "qabf",
    "scd",
    "spatial_frequency",
    "ssim",
    "standard_deviation",
    "vif",
]
