"""Structural similarity: SSIM (Wang et al. 2004) and multi-scale SSIM (Wang et al. 2003)."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..filters import gaussian_kernel
from ._images import Convention, ImageLike, channel_mean, check_convention, filter_plane, require_size

_K1, _K2 = 0.01, 0.03
_WINDOW = gaussian_kernel(5, 1.5)  # MATLAB's fspecial('gaussian', 11, 1.5) is outer(_WINDOW, _WINDOW)
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

Moments = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _SSIMSettings:
    """How one implementation computes SSIM."""

    smooth: Callable[[np.ndarray], np.ndarray]  # local weighted mean
    min_size: int  # smallest image side the window fits in
    data_range: float  # L in C1 = (K1 L)^2, C2 = (K2 L)^2
    cov_norm: float  # 1 for population (co)variances, n / (n - 1) for sample ones
    border: int  # pixels dropped on each side of the map before averaging


_SSIM_SETTINGS = {
    # metricsSsim.m: fspecial('gaussian', 11, 1.5), filter2(..., 'valid'), L = 255.
    "vifb": _SSIMSettings(partial(filter_plane, kernel=_WINDOW), len(_WINDOW), 255.0, 1.0, 0),
    # CDDFuse calls scikit-image's structural_similarity on float32 images without `data_range`;
    # scikit-image <= 0.19 then took the float dtype range -1..1, i.e. L = 2. Its defaults: 7x7 uniform
    # window with reflected borders (scipy.ndimage.uniform_filter: half-sample symmetric), sample covariances, a
    # 3-pixel border left out of the mean.
    "cddfuse": _SSIMSettings(partial(filter_plane, kernel=[1 / 7] * 7, border="symmetric"), 7, 2.0, 49 / 48, 3),
}


def _local_moments(image: np.ndarray, settings: _SSIMSettings) -> Moments:
    """Local mean and (population) variance of `image` under the window of `settings`."""
    mean = settings.smooth(image)
    variance = settings.smooth(image * image)
    variance -= mean * mean
    return mean, variance


def _ssim_maps(
    x: np.ndarray, y: np.ndarray, moments_x: Moments, moments_y: Moments, settings: _SSIMSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Local SSIM and contrast-structure maps ``(l * cs, cs)`` of `x` and `y`, given their local moments."""
    c1, c2 = (_K1 * settings.data_range) ** 2, (_K2 * settings.data_range) ** 2
    (mean_x, var_x), (mean_y, var_y) = moments_x, moments_y
    # contrast-structure (2 n cov + C2) / (n (var_x + var_y) + C2), n = cov_norm
    contrast_structure = settings.smooth(x * y)
    contrast_structure -= mean_x * mean_y
    contrast_structure *= 2 * settings.cov_norm
    contrast_structure += c2
    denominator = var_x + var_y
    denominator *= settings.cov_norm
    denominator += c2
    contrast_structure /= denominator
    # luminance (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), times contrast-structure
    ssim_map = 2 * mean_x * mean_y
    ssim_map += c1
    np.multiply(mean_x, mean_x, out=denominator)
    denominator += mean_y * mean_y
    denominator += c1
    ssim_map /= denominator
    ssim_map *= contrast_structure
    return ssim_map, contrast_structure


def _ssim_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: Convention) -> float:
    settings = _SSIM_SETTINGS[convention]
    require_size(fused, settings.min_size, "SSIM")
    moments_f = _local_moments(fused, settings)
    total = 0.0
    for source in (a, b):
        ssim_map = _ssim_maps(source, fused, _local_moments(source, settings), moments_f, settings)[0]
        border = settings.border
        total += float(ssim_map[border : ssim_map.shape[0] - border, border : ssim_map.shape[1] - border].mean())
    return total


def ssim(fused: ImageLike, a: ImageLike, b: ImageLike, convention: Convention = "vifb") -> float:
    r"""Structural similarity ``SSIM(A, F) + SSIM(B, F)``, in -2..2 (2 for F = A = B). Higher is better.

    - VIFB (``metricsSsim.m``): Gaussian 11x11 window with sigma 1.5, ``C1 = (0.01 L)^2``,
      ``C2 = (0.03 L)^2``, L = 255, population local (co)variances, mean over the 'valid' region
      (images must be at least 11x11).
    - CDDFuse (``Evaluator.SSIM``: scikit-image ``structural_similarity`` on float32 images, whose
      default data range was the float dtype's -1..1): 7x7 uniform window, L = 2, sample (co)variances,
      mean over the map without a 3-pixel border. scikit-image is not needed: this is computed here.

    The constants keep constant images finite: two constants ``x, y`` give ``(2xy + C1) / (x^2 + y^2 + C1)``.
    Symmetric in (A, B).

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
        convention: ``"vifb"`` (default) or ``"cddfuse"``.
    """
    check_convention(convention)
    return channel_mean(_ssim_plane, fused, a, b, convention=convention)


def _halve(plane: np.ndarray) -> np.ndarray:
    """MS-SSIM's downsampling: 2x2 box filter with symmetric borders, then every second pixel (MATLAB
    ``imfilter(x, ones(2)/4, 'symmetric')`` followed by ``x(1:2:end, 1:2:end)``)."""
    padded = np.pad(plane, ((0, plane.shape[0] % 2), (0, plane.shape[1] % 2)), mode="symmetric")
    return (padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]) / 4


def _ms_ssim_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``MS-SSIM(A, F) + MS-SSIM(B, F)`` after Wang's ``msssim.m``: per source, the product of the mean
    contrast-structure at scales 1-4 and the mean SSIM at scale 5, each to its weight; negative means
    are clipped to 0 (MATLAB would return a complex number)."""
    scales, settings = len(_MS_SSIM_WEIGHTS), _SSIM_SETTINGS["vifb"]
    require_size(fused, settings.min_size * 2 ** (scales - 1), "MS-SSIM")
    images, values = (fused, a, b), [1.0, 1.0]
    for scale, weight in enumerate(_MS_SSIM_WEIGHTS):
        if scale > 0:
            images = tuple(_halve(image) for image in images)
        moments_f = _local_moments(images[0], settings)
        for index, source in enumerate(images[1:]):
            maps = _ssim_maps(source, images[0], _local_moments(source, settings), moments_f, settings)
            term = maps[0] if scale == scales - 1 else maps[1]
            values[index] *= max(float(term.mean()), 0.0) ** weight
    return sum(values)


def ms_ssim(fused: ImageLike, a: ImageLike, b: ImageLike) -> float:
    r"""Multi-scale SSIM ``MS-SSIM(A, F) + MS-SSIM(B, F)``, in 0..2 (2 for F = A = B). Higher is better.

    Neither VIFB nor CDDFuse has MS-SSIM; this follows Wang, Simoncelli & Bovik (2003) and their
    ``msssim.m``: five scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), the VIFB SSIM
    window (Gaussian 11x11, sigma 1.5, L = 255, 'valid' region), 2x2 mean downsampling between
    scales; the contrast-structure term at scales 1-4, the full SSIM at scale 5. Summed over the two
    sources like SSIM. Images must be at least 176x176 (11 pixels at the coarsest scale). Constant
    images are finite (see `ssim`). Symmetric in (A, B).

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
    """
    return channel_mean(_ms_ssim_plane, fused, a, b)
