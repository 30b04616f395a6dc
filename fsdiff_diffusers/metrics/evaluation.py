"""`evaluate`: the whole metric suite (or a chosen part of it) for one fused image and its two sources."""

from collections.abc import Callable, Iterable

from ._images import Convention, ImageLike, as_image, check_convention
from .gradient import average_gradient, edge_transfer, nabf, qabf, spatial_frequency
from .information import entropy, mutual_information
from .statistics import correlation_coefficient, psnr, scd, standard_deviation
from .structural import ms_ssim, ssim
from .visual_fidelity import vif

MetricFunction = Callable[[ImageLike, ImageLike, ImageLike, Convention], float]

# Canonical name -> metric of (fused, a, b, convention); no-reference metrics ignore the sources,
# convention-free metrics ignore the convention.
METRICS: dict[str, MetricFunction] = {
    "EN": lambda f, a, b, convention: entropy(f, convention=convention),
    "SD": lambda f, a, b, convention: standard_deviation(f),
    "SF": lambda f, a, b, convention: spatial_frequency(f, convention=convention),
    "AG": lambda f, a, b, convention: average_gradient(f, convention=convention),
    "MI": lambda f, a, b, convention: mutual_information(f, a, b, convention=convention),
    "SCD": lambda f, a, b, convention: scd(f, a, b),
    "VIF": lambda f, a, b, convention: vif(f, a, b),
    "Qabf": lambda f, a, b, convention: qabf(f, a, b),
    "Q_ir": lambda f, a, b, convention: edge_transfer(f, a),
    "Q_vi": lambda f, a, b, convention: edge_transfer(f, b),
    "Nabf": lambda f, a, b, convention: nabf(f, a, b),
    "SSIM": lambda f, a, b, convention: ssim(f, a, b, convention=convention),
    "MS-SSIM": lambda f, a, b, convention: ms_ssim(f, a, b),
    "CC": lambda f, a, b, convention: correlation_coefficient(f, a, b),
    "PSNR": lambda f, a, b, convention: psnr(f, a, b, convention=convention),
}

HIGHER_IS_BETTER: dict[str, bool] = {name: name != "Nabf" for name in METRICS}
"""Direction of each metric: True where a higher value is better (all but Nabf, an artefact measure)."""

_CANONICAL = {name.lower(): name for name in METRICS}


def metric_names(names: Iterable[str] | None = None) -> list[str]:
    """Canonical spellings of `names` (case-insensitive; ``None``: all metrics, in `METRICS` order).

    Raises:
        ValueError: for a name that is not a metric, listing the known ones.
    """
    if names is None:
        return list(METRICS)
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name.lower() not in _CANONICAL]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known metrics: {list(METRICS)}")
    return [_CANONICAL[name.lower()] for name in names]


def evaluate(
    fused: ImageLike,
    infrared: ImageLike,
    visible: ImageLike,
    metrics: Iterable[str] | None = None,
    convention: Convention = "vifb",
) -> dict[str, float]:
    r"""Fusion metrics of one fused image against its two sources.

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)`` (numpy or torch, channels-last).
        infrared: the first source (infrared, or MRI for medical pairs), same height and width.
        visible: the second source (visible, or CT / PET / SPECT), same height and width; a colour
            source next to a grey fused image is turned grey, a grey one next to a colour result is
            used for every channel.
        metrics: names out of EN, SD, SF, AG, MI, SCD, VIF, Qabf, Q_ir, Q_vi, Nabf, SSIM, MS-SSIM, CC, PSNR
            (case-insensitive); ``None`` for all. Q_ir and Q_vi are Qabf's per-source terms (`edge_transfer` of
            the fused image from the infrared, resp. the visible source). MS-SSIM needs images of at least 176x176.
        convention: ``"vifb"`` (default, VIFB's MATLAB definitions) or ``"cddfuse"`` (CDDFuse /
            DDFM's Python ``Evaluator``); it changes EN, SF, AG, MI, SSIM and PSNR, see each function.

    Returns:
        ``{canonical name: value}`` in the requested order. `HIGHER_IS_BETTER` gives each one's direction.

    Raises:
        ValueError: for unknown metric names or conventions, mismatched sizes, NaN values or images
            that are not 2-D / 3-D.
    """
    check_convention(convention)
    names = metric_names(metrics)
    fused, infrared, visible = as_image(fused, "fused"), as_image(infrared, "infrared"), as_image(visible, "visible")
    return {name: METRICS[name](fused, infrared, visible, convention) for name in names}
