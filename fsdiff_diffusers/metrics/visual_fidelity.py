"""Visual information fidelity (VIF): Sheikh & Bovik's multiscale pixel-domain VIF, summed over both sources."""

import math

import numpy as np

from ..filters import gaussian_kernel
from ._images import ImageLike, channel_mean, filter_plane, require_size

_NOISE_VARIANCE = 2.0  # sigma_n^2 of the HVS noise model
_EPS = 1e-10
_LN10 = math.log(10)
# Scale s = 1..4 uses an N = 2^(5-s) + 1 tap Gaussian window with sigma N / 5.
_WINDOWS = [gaussian_kernel(2 ** (4 - scale), (2 ** (5 - scale) + 1) / 5) for scale in range(1, 5)]
# Smallest side that leaves a 3x3 window room at the coarsest scale.
_MIN_SIZE = 41


def _local_moments(image: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and variance (clipped at 0) of `image`, 'valid' region."""
    mean = filter_plane(image, window)
    variance = filter_plane(image * image, window)
    variance -= mean * mean
    return mean, np.maximum(variance, 0, out=variance)


def _information(
    reference: np.ndarray, distorted: np.ndarray, moments_r: tuple, moments_d: tuple, window: np.ndarray
) -> tuple[float, float]:
    """Information ``(sum log10(1 + g^2 s1 / (sv + sn)), sum log10(1 + s1 / sn))`` of one scale, with
    ``g`` and ``sv`` the local gain and residual variance of the distortion channel (``vifp_mscale.m``).

    The reference's variance in `moments_r` is overwritten.
    """
    (mean_r, var_r), (mean_d, var_d) = moments_r, moments_d
    covariance = filter_plane(reference * distorted, window)
    covariance -= mean_r * mean_d

    gain = covariance / (var_r + _EPS)
    residual = gain * covariance
    np.subtract(var_d, residual, out=residual)
    flat_reference = var_r < _EPS
    gain[flat_reference] = 0
    residual[flat_reference] = var_d[flat_reference]
    var_r[flat_reference] = 0
    flat_distorted = var_d < _EPS
    gain[flat_distorted] = 0
    residual[flat_distorted] = 0
    negative = gain < 0
    residual[negative] = var_d[negative]
    gain[negative] = 0
    np.maximum(residual, _EPS, out=residual)

    # log10(1 + g^2 s1 / (sv + sn)), computed in place in `gain`.
    residual += _NOISE_VARIANCE
    gain *= gain
    gain *= var_r
    gain /= residual
    numerator = np.log1p(gain, out=gain).sum() / _LN10
    denominator = np.log1p(var_r / _NOISE_VARIANCE).sum() / _LN10
    return float(numerator), float(denominator)


def _vif_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``vifp_mscale(A, F) + vifp_mscale(B, F)``; a term is 1 when its reference has no variance at any
    scale (0 / 0)."""
    require_size(fused, _MIN_SIZE, "VIF")
    images = (fused, a, b)
    numerators, denominators = [0.0, 0.0], [0.0, 0.0]
    for scale, window in enumerate(_WINDOWS):
        if scale > 0:
            images = tuple(filter_plane(image, window)[::2, ::2] for image in images)
        moments_f = _local_moments(images[0], window)
        for index, source in enumerate(images[1:]):
            numerator, denominator = _information(source, images[0], _local_moments(source, window), moments_f, window)
            numerators[index] += numerator
            denominators[index] += denominator
    return sum(num / den if den > 0 else 1.0 for num, den in zip(numerators, denominators))


def vif(fused: ImageLike, a: ImageLike, b: ImageLike) -> float:
    r"""Visual information fidelity ``VIF(A, F) + VIF(B, F)`` (Sheikh & Bovik 2006). Higher is better.

    Each term is the multiscale pixel-domain VIF of ``vifp_mscale.m`` (also CDDFuse's
    ``Evaluator.VIFF``): four scales; at scale s a Gaussian window of
    ``N = 2^(5-s) + 1`` taps and sigma ``N / 5`` gives local means and (co)variances ('valid'
    region), and before scales 2-4 the images are filtered with that window and decimated by 2.
    With gain ``g = cov / var_A`` and residual ``sv^2 = var_F - g cov`` (clamped as in the
    reference code), ``VIF = sum log10(1 + g^2 var_A / (sv^2 + 2)) / sum log10(1 + var_A / 2)``,
    sums over pixels and scales, noise variance 2. F = A gives 1 per term; a reference without
    any local variance (constant) gives 0 / 0, defined as 1 like CDDFuse. Images must be at
    least 41x41. Symmetric in (A, B).

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
    """
    return channel_mean(_vif_plane, fused, a, b)
