"""Pixel statistics: standard deviation (SD), correlation coefficient (CC), sum of the correlations of
differences (SCD) and PSNR."""

import math
from typing import Literal

import numpy as np

from ._images import Convention, ImageLike, channel_mean, check_convention

PSNRForm = Literal["vifb", "mse"]
PSNR_FORMS = ("vifb", "mse")


def _standard_deviation_plane(plane: np.ndarray) -> float:
    return float(plane.std())


def standard_deviation(fused: ImageLike) -> float:
    r"""Standard deviation (SD) of the fused image, population form (divide by ``M*N``). Higher is better
    (more contrast; noise raises it too).

    Same in VIFB (``metricsVariance.m``, which despite its name returns the standard deviation) and
    CDDFuse (``Evaluator.SD``). A constant image has SD 0.

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)`` (channels averaged).
    """
    return channel_mean(_standard_deviation_plane, fused)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB ``corr2``: Pearson correlation of two planes; 0 (not NaN) when either is constant."""
    x, y = x - x.mean(), y - y.mean()
    norm = math.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / norm) if norm > 0 else 0.0


def _correlation_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return (_pearson(a, fused) + _pearson(b, fused)) / 2


def correlation_coefficient(fused: ImageLike, a: ImageLike, b: ImageLike) -> float:
    r"""Correlation coefficient (CC): the mean of ``corr(A, F)`` and ``corr(B, F)``, in -1..1. Higher is better.

    Pearson correlations over all pixels, as CDDFuse's ``Evaluator.CC``. A constant image has
    correlation 0 with anything (the 0/0 is defined as 0). Symmetric in (A, B).

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
    """
    return channel_mean(_correlation_plane, fused, a, b)


def _scd_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return _pearson(fused - b, a) + _pearson(fused - a, b)


def scd(fused: ImageLike, a: ImageLike, b: ImageLike) -> float:
    r"""Sum of the correlations of differences (SCD, Aslantas & Bendes 2015), in -2..2. Higher is better.

    ``SCD = corr(F - B, A) + corr(F - A, B)``: how much of each source the fused image holds that
    the other source does not explain. Same in CDDFuse (``Evaluator.SCD``). A correlation with a
    constant image is defined as 0. Symmetric in (A, B).

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
    """
    return channel_mean(_scd_plane, fused, a, b)


def _decibels(peak: float, mean_squared_error: float) -> float:
    """``10 log10(peak^2 / mse)`` with the limits spelled out: +inf for a zero error, -inf for a zero peak."""
    if mean_squared_error == 0:
        return math.inf
    if peak == 0:
        return -math.inf
    return 10 * math.log10(peak**2 / mean_squared_error)


def _psnr_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: Convention, form: PSNRForm) -> float:
    squared_errors = [((source - fused) ** 2).sum() for source in (a, b)]
    if form == "vifb":
        error = sum(math.sqrt(sse) / fused.size for sse in squared_errors) / 2
    else:
        error = sum(squared_errors) / (2 * fused.size)
    peak = 255.0 if convention == "vifb" else float(fused.max())
    return _decibels(peak, error)


def psnr(
    fused: ImageLike,
    a: ImageLike,
    b: ImageLike,
    convention: Convention = "vifb",
    form: PSNRForm | None = None,
) -> float:
    r"""Peak signal-to-noise ratio (PSNR) of the fused image against both sources, in dB. Higher is better.

    Two error forms are in use:

    - ``form="vifb"`` (``metricsPsnr.m``): ``PSNR = 20 log10(255 / sqrt(m))`` with ``m`` the mean over
      the two sources of ``sqrt(SSE) / (M*N) = RMSE / sqrt(M*N)``, not the MSE, so the value depends on
      the image size and is far from the usual PSNR (58 dB against 14 dB for the mean of two random
      640x480 images);
    - ``form="mse"``: ``PSNR = 10 log10(peak^2 / MSE)`` with ``MSE`` the mean of the two sources'
      mean squared errors: the usual PSNR (with peak 255, the form of this project's reference tables).

    The peak is 255 in the VIFB convention and ``max(F)`` in the CDDFuse one (``Evaluator.PSNR``).
    `form` defaults to the convention's own: ``"vifb"`` for VIFB, ``"mse"`` for CDDFuse. A zero error
    (F equals both sources) gives ``inf``; a CDDFuse peak of 0 (black F) gives ``-inf``. Symmetric in (A, B).

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
        convention: ``"vifb"`` (default) or ``"cddfuse"``.
        form: ``"vifb"`` or ``"mse"``; ``None`` picks the convention's form.
    """
    check_convention(convention)
    if form is None:
        form = "vifb" if convention == "vifb" else "mse"
    if form not in PSNR_FORMS:
        raise ValueError(f"form must be one of {PSNR_FORMS} or None, got {form!r}")
    return channel_mean(_psnr_plane, fused, a, b, convention=convention, form=form)
