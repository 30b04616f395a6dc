"""Histogram metrics: entropy (EN) and mutual information (MI)."""

import numpy as np

from ._images import Convention, ImageLike, channel_mean, check_convention

_LEVELS = 256


def _entropy_of_counts(counts: np.ndarray, log=np.log) -> float:
    """Shannon entropy of the distribution given by histogram `counts`, in the unit of `log`."""
    probabilities = counts[counts > 0] / counts.sum()
    return float(-(probabilities * log(probabilities)).sum())


def _grey_levels(plane: np.ndarray, convention: Convention) -> np.ndarray:
    """Integer grey levels 0..255 of a plane: floor for VIFB, round-half-to-even for CDDFuse; clipped."""
    levels = np.floor(plane) if convention == "vifb" else np.round(plane)
    return np.clip(levels, 0, _LEVELS - 1).astype(np.intp)


def _entropy_plane(plane: np.ndarray, convention: Convention) -> float:
    counts = np.bincount(_grey_levels(plane, convention).ravel(), minlength=_LEVELS)
    return _entropy_of_counts(counts, np.log2)


def entropy(fused: ImageLike, convention: Convention = "vifb") -> float:
    r"""Entropy (EN) of the fused image, in bits. Higher is better (more information; noise raises it too).

    ``EN = -sum_l p_l log2 p_l`` over the 256-bin grey-level histogram. The grey levels are
    ``floor(F)`` in the VIFB convention (``metricsEntropy.m``) and ``round(F)`` in the CDDFuse one
    (``Evaluator.EN``); values outside 0..255 are clipped into the end bins. A constant image has EN 0.

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)`` (channels averaged).
        convention: ``"vifb"`` (default) or ``"cddfuse"``.
    """
    check_convention(convention)
    return channel_mean(_entropy_plane, fused, convention=convention)


def _mi_levels(plane: np.ndarray, convention: Convention) -> np.ndarray:
    """Grey levels MI is counted on: VIFB min-max normalises to 0..255 and rounds half away from zero
    (MATLAB ``int16``; a constant plane maps to 0); CDDFuse rounds the raw values."""
    if convention == "cddfuse":
        return _grey_levels(plane, convention)
    low, high = plane.min(), plane.max()
    if high == low:
        return np.zeros(plane.shape, dtype=np.intp)
    return np.floor((plane - low) / (high - low) * (_LEVELS - 1) + 0.5).astype(np.intp)


def _mutual_information_pair(x: np.ndarray, y: np.ndarray) -> float:
    """MI in nats of two integer level arrays in 0..255: ``H(x) + H(y) - H(x, y)`` from a 256x256 joint histogram."""
    joint = np.bincount((x * _LEVELS + y).ravel(), minlength=_LEVELS * _LEVELS).reshape(_LEVELS, _LEVELS)
    return _entropy_of_counts(joint.sum(1)) + _entropy_of_counts(joint.sum(0)) - _entropy_of_counts(joint)


def _mutual_information_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: Convention) -> float:
    levels_f = _mi_levels(fused, convention)
    return sum(_mutual_information_pair(_mi_levels(source, convention), levels_f) for source in (a, b))


def mutual_information(fused: ImageLike, a: ImageLike, b: ImageLike, convention: Convention = "vifb") -> float:
    r"""Mutual information (MI) ``MI(A, F) + MI(B, F)``, in nats. Higher is better.

    Each term is ``H(X) + H(F) - H(X, F)`` from a 256x256 joint grey-level histogram, with natural
    logarithms in both conventions. VIFB (``metricsMutinf.m``) first min-max normalises every image
    to 0..255 and rounds half away from zero (a constant image becomes all zeros); CDDFuse
    (``Evaluator.MI``, scikit-learn's ``mutual_info_score``) uses the rounded raw grey levels. MI of
    an image with itself is its entropy in nats; a constant image shares no information (MI 0).
    Symmetric in (A, B).

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
        convention: ``"vifb"`` (default) or ``"cddfuse"``.
    """
    check_convention(convention)
    return channel_mean(_mutual_information_plane, fused, a, b, convention=convention)
