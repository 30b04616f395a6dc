"""Filters shared by several metrics: Gaussian windows (SSIM, MS-SSIM, VIF) and Sobel gradients (Qabf, Nabf)."""


import numpy as np
from scipy import ndimage


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)``: ``outer(w, w)`` is the 2-D window.

    (fspecial also zeroes taps below ``eps * max``; no window used here has such taps.)
    """
    offsets = np.arange(size) - (size - 1) / 2
    window = np.exp(-(offsets**2) / (2 * sigma**2))
    return window / window.sum()


def filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Correlate `image` with the separable window ``outer(window, window)``, keeping the 'valid' part.

    Equals MATLAB's ``filter2(outer(window, window), image, 'valid')``: the output is
    ``(H - n + 1, W - n + 1)`` for an n-tap window.
    """
    radius = (len(window) - 1) // 2
    filtered = ndimage.correlate1d(ndimage.correlate1d(image, window, axis=0), window, axis=1)
    return filtered[radius : image.shape[0] - radius, radius : image.shape[1] - radius]


def sobel(image: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Sobel responses ``(gx, gy)`` of `image`, unscaled, same size as the input.

    ``gx`` is the correlation with ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (right minus left) and
    ``gy`` with its transpose (bottom minus top). `mode` is the border extension (numpy.pad):
    ``"constant"`` (zeros) is MATLAB's ``conv2(..., 'same')``, ``"reflect"`` the mirror extension
    without edge repetition used by Kumar's ``per_extn_im_fn``.
    """
    padded = np.pad(image, 1, mode=mode)
    rows = 2 * padded[1:-1]  # [1, 2, 1] down the columns ...
    rows += padded[:-2]
    rows += padded[2:]
    gx = rows[:, 2:] - rows[:, :-2]  # ... then [-1, 0, 1] along the rows
    rows = padded[2:] - padded[:-2]  # [-1, 0, 1] down the columns ...
    gy = 2 * rows[:, 1:-1]  # ... then [1, 2, 1] along the rows
    gy += rows[:, :-2]
    gy += rows[:, 2:]
    return gx, gy
