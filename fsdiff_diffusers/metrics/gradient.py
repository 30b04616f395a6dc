"""Gradient metrics: spatial frequency (SF), average gradient (AG) and the edge-transfer measures Qabf, its
per-source terms Q_ir and Q_vi (`edge_transfer`), and Nabf."""


import numpy as np

from ._images import Convention, ImageLike, channel_mean, check_convention, sobel_plane


def _spatial_frequency_plane(plane: np.ndarray, convention: Convention) -> float:
    squared_dx = np.diff(plane, axis=1) ** 2
    squared_dy = np.diff(plane, axis=0) ** 2
    if convention == "vifb":
        return float(np.sqrt((squared_dx.sum() + squared_dy.sum()) / plane.size))
    return float(np.sqrt(squared_dx.mean() + squared_dy.mean()))


def spatial_frequency(fused: ImageLike, convention: Convention = "vifb") -> float:
    r"""Spatial frequency (SF) of the fused image. Higher is better (sharper; noise raises it too).

    ``SF = sqrt(RF^2 + CF^2)`` with ``RF^2`` and ``CF^2`` the summed squared horizontal and vertical
    first differences. VIFB (``metricsSpatial_frequency.m``) divides both sums by ``M*N``; CDDFuse
    (``Evaluator.SF``) takes their means (over ``M*(N-1)`` and ``(M-1)*N`` differences). A constant
    image has SF 0.

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)`` (channels averaged).
        convention: ``"vifb"`` (default) or ``"cddfuse"``.
    """
    check_convention(convention)
    return channel_mean(_spatial_frequency_plane, fused, convention=convention)


def _average_gradient_plane(plane: np.ndarray, convention: Convention) -> float:
    gy, gx = np.gradient(plane)
    magnitude = np.sqrt((gx**2 + gy**2) / 2)
    if convention == "vifb":
        return float(magnitude.sum() / ((plane.shape[0] - 1) * (plane.shape[1] - 1)))
    return float(magnitude.mean())


def average_gradient(fused: ImageLike, convention: Convention = "vifb") -> float:
    r"""Average gradient (AG) of the fused image. Higher is better (sharper; noise raises it too).

    The pixel values ``sqrt((Gx^2 + Gy^2) / 2)``, with ``Gx, Gy`` MATLAB's ``gradient`` (central
    differences inside, one-sided at the borders), summed and divided by ``(M-1)*(N-1)`` for VIFB
    (``metricsAvg_gradient.m``) or averaged over all ``M*N`` pixels for CDDFuse (``Evaluator.AG``).
    A constant image has AG 0.

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)`` (channels averaged).
        convention: ``"vifb"`` (default) or ``"cddfuse"``.
    """
    check_convention(convention)
    return channel_mean(_average_gradient_plane, fused, convention=convention)


def _sigmoid(x: np.ndarray, scale: float, slope: float, centre: float) -> np.ndarray:
    """``scale / (1 + exp(-slope * (x - centre)))``: the edge-preservation response of Petrovic's measures."""
    response = np.subtract(centre, x)
    response *= slope
    np.exp(response, out=response)
    response += 1
    return np.divide(scale, response, out=response)


def _edge_strength(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """``sqrt(gx^2 + gy^2)``."""
    strength = gx * gx
    strength += gy * gy
    return np.sqrt(strength, out=strength)


def _relative_strength(strength: np.ndarray, strength_f: np.ndarray) -> np.ndarray:
    """The smaller over the larger of two edge strengths; 0 where either vanishes."""
    relative = np.minimum(strength, strength_f)
    return np.divide(relative, np.maximum(strength, strength_f), out=relative, where=relative > 0)


def _qabf_edges(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength and orientation as in VIFB's ``metricsQabf.m``.

    MATLAB's ``conv2(p, h3, 'same')`` flips the kernel, so its x response is ``-gx``; the angle is
    ``atan(SAy / SAx)`` (not atan2) and pi/2 wherever ``SAx == 0`` (``atan(inf)`` here).
    """
    gx, gy = sobel_plane(plane, border="zeros")
    np.negative(gx, out=gx)
    angle = np.divide(gy, gx, out=np.full_like(gx, np.inf), where=gx != 0)
    return _edge_strength(gx, gy), np.arctan(angle, out=angle)


def _qabf_preservation(strength: np.ndarray, angle: np.ndarray, strength_f: np.ndarray, angle_f: np.ndarray):
    """Edge preservation ``Q^{XF}`` of a source X in F (VIFB parameters Tg, kg, Dg, Ta, ka, Da).

    Relative strength is ``min/max`` of the two strengths, except that where they are equal
    ``metricsQabf.m`` takes the strength itself (kept here for fidelity).
    """
    relative = _relative_strength(strength, strength_f)
    np.copyto(relative, strength_f, where=strength == strength_f)
    alignment = np.abs(angle - angle_f)
    alignment *= -2 / np.pi
    alignment += 1
    preservation = _sigmoid(relative, 0.9994, 15, 0.5)
    preservation *= _sigmoid(alignment, 0.9879, 22, 0.8)
    return preservation


def _edge_transfer_sums(fused: np.ndarray, *sources: np.ndarray) -> list[tuple[float, float]]:
    """Per source X, ``(sum(Q^{XF} g_X), sum(g_X))``: X's edge preservation in F weighted by X's own edge
    strength, and the total of that weight. The one computation behind Qabf and its per-source terms.

    Args:
        fused: the fused plane ``(H, W)``. sources: source planes of the same shape.
    """
    strength_f, angle_f = _qabf_edges(fused)
    sums = []
    for source in sources:
        strength, angle = _qabf_edges(source)
        preserved = (_qabf_preservation(strength, angle, strength_f, angle_f) * strength).sum()
        sums.append((float(preserved), float(strength.sum())))
    return sums


def _weighted_ratio(preserved: float, weight: float) -> float:
    """``preserved / weight``; 0 where there is no edge to transfer (``weight == 0``)."""
    return preserved / weight if weight > 0 else 0.0


def _qabf_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    preserved, weights = zip(*_edge_transfer_sums(fused, a, b))
    return _weighted_ratio(sum(preserved), sum(weights))


def _edge_transfer_plane(fused: np.ndarray, source: np.ndarray) -> float:
    ((preserved, weight),) = _edge_transfer_sums(fused, source)
    return _weighted_ratio(preserved, weight)


def qabf(fused: ImageLike, a: ImageLike, b: ImageLike) -> float:
    r"""Qabf (Xydeas-Petrovic edge transfer), VIFB's ``metricsQabf.m``. Higher is better, at most ~0.975.

    Sobel edge strength ``g`` and orientation ``alpha = atan(Sy / Sx)`` (zero-padded borders,
    ``alpha = pi/2`` where ``Sx = 0``) of A, B and F; per pixel, the preservation of A's edges in F
    is ``Q^{AF} = Tg / (1 + exp(kg (G^{AF} - Dg))) * Ta / (1 + exp(ka (A^{AF} - Da)))`` with
    ``G^{AF}`` the smaller over the larger strength, ``A^{AF} = 1 - |alpha_A - alpha_F| / (pi/2)``,
    Tg = 0.9994, kg = -15, Dg = 0.5, Ta = 0.9879, ka = -22, Da = 0.8; then
    ``Qabf = sum(Q^{AF} g_A + Q^{BF} g_B) / sum(g_A + g_B)``. CDDFuse's ``Evaluator.Qabf`` is the
    same computation. Because of the finite sigmoid constants (and the code's quirk of taking the
    strength itself, not 1, as relative strength where two strengths are equal) a perfect copy
    (F = A = B) scores ``0.9994 * 0.9879 / (1 + e^-4.4) = 0.97533`` on edges of strength >= 1, not 1.
    The zero padding puts edges on the border of any non-zero image, constants included; when neither
    source has any edge (both all zero) there is nothing to transfer and Qabf is defined as 0.
    Symmetric in (A, B). Its two terms, each source's edge transfer on its own, are `edge_transfer`'s
    ``Q_ir`` and ``Q_vi``.

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
    """
    return channel_mean(_qabf_plane, fused, a, b)


def edge_transfer(fused: ImageLike, source: ImageLike) -> float:
    r"""Per-source edge transfer, Qabf's term of one source: ``Q_ir`` and ``Q_vi``. Higher is better, at most ~0.975.

    How much of one source's own edges reach the fused image: with Qabf's edge strength ``g``, orientation and
    per-pixel preservation ``Q^{XF}`` (see `qabf`, same constants and border rule),
    ``Q_X = sum(Q^{XF} g_X) / sum(g_X)``, the preservation of X's edges in F weighted by X's own edge strength.
    `evaluate`'s ``Q_ir`` is ``edge_transfer(fused, infrared)`` (``Q^{AF}`` weighted by ``g_A``) and ``Q_vi`` is
    ``edge_transfer(fused, visible)`` (``Q^{BF}`` by ``g_B``). As everywhere in this package the first source is
    called "infrared" also for medical pairs, where ``Q_ir`` is the MRI's term. Qabf is their average weighted by
    each source's total edge strength: on a grey image
    ``Qabf = (Q_ir sum(g_A) + Q_vi sum(g_B)) / (sum(g_A) + sum(g_B))``, so a high Qabf can hide a source whose
    edges are lost when the other source's edges dominate. A fusion that copies one source scores Qabf's ceiling
    (0.97533 on edges of strength >= 1, see `qabf`) on that source's term and much less on the other's.
    One convention only (CDDFuse's Qabf is VIFB's computation). A source without any edge (all zero) has nothing
    to transfer: the value is defined as 0.

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)`` (channels averaged).
        source: one source image, same height and width.
    """
    return channel_mean(_edge_transfer_plane, fused, source)


def _nabf_edges(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength and orientation as in Kumar's ``objective_fusion_perform_fn.m``: Sobel / 8 on a
    mirror-extended image, orientation ``atan(gx / gy)`` (Kumar's ``atan(gv / gh)``: horizontal over
    vertical derivative; +-pi/2 where ``gy = 0``), 0 where both responses vanish."""
    gx, gy = sobel_plane(plane, border="reflect")
    gx /= 8
    gy /= 8
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.arctan(gx / gy)
    angle[np.isnan(angle)] = 0.0
    return _edge_strength(gx, gy), angle


def _nabf_preservation(strength: np.ndarray, angle: np.ndarray, strength_f: np.ndarray, angle_f: np.ndarray):
    """Edge preservation ``Q^{XF} = sqrt(Q_g Q_a)`` of Petrovic's objective measures (Kumar's parameters)."""
    alignment = np.abs(angle - angle_f)
    alignment -= np.pi / 2
    np.abs(alignment, out=alignment)
    alignment *= 2 / np.pi
    preservation = _sigmoid(_relative_strength(strength, strength_f), 0.9999, 19, 0.5)
    preservation *= _sigmoid(alignment, 0.9995, 22, 0.5)
    return np.sqrt(preservation, out=preservation)


def _nabf_weight(strength: np.ndarray) -> np.ndarray:
    """Perceptual weight ``g^1.5`` of edges with strength at least 2, 0.001 elsewhere."""
    return np.where(strength >= 2, strength**1.5, 0.001)


def _nabf_plane(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    strength_f, angle_f = _nabf_edges(fused)
    edges = [_nabf_edges(source) for source in (a, b)]
    # Only artefact pixels (F's edge stronger than both sources') enter the numerator.
    artefact = (strength_f > edges[0][0]) & (strength_f > edges[1][0])
    strength_f, angle_f = strength_f[artefact], angle_f[artefact]
    numerator = weight_sum = 0.0
    for strength, angle in edges:
        weight = _nabf_weight(strength)
        weight_sum += weight.sum()
        loss = 1 - _nabf_preservation(strength[artefact], angle[artefact], strength_f, angle_f)
        numerator += (loss * weight[artefact]).sum()
    return float(numerator / weight_sum)


def nabf(fused: ImageLike, a: ImageLike, b: ImageLike) -> float:
    r"""Nabf, fusion artefacts (Kumar's modification of Petrovic's N^{AB/F}), in 0..1. Lower is better.

    Follows ``objective_fusion_perform_fn.m`` (B. K. Shreyamsha Kumar, 2013; shipped with VIFB's
    CBF method): Sobel responses divided by 8 on a mirror-extended image give edge strength ``g``
    and orientation ``alpha = atan(Sx / Sy)`` (0 where both vanish); the preservation of A's edges in F is
    ``Q^{AF} = sqrt(Q_g Q_a)`` with ``Q_g = 0.9999 / (1 + exp(-19 (G^{AF} - 0.5)))``, ``G^{AF}``
    the smaller over the larger strength (0 where either vanishes),
    ``Q_a = 0.9995 / (1 + exp(-22 (A^{AF} - 0.5)))`` and
    ``A^{AF} = ||alpha_A - alpha_F| - pi/2| * 2 / pi``; weights are ``w = g^1.5`` where
    ``g >= 2`` and 0.001 elsewhere. Artefacts are the pixels where F's edges are stronger than
    both sources':
    ``Nabf = sum(N * ((1 - Q^{AF}) w_A + (1 - Q^{BF}) w_B)) / sum(w_A + w_B)``, ``N`` the 0/1
    artefact mask. The weights never vanish, so constant images are safe (F = A = B gives 0).
    Symmetric in (A, B).

    Args:
        fused: the fused image, 0..255, ``(H, W)`` or ``(H, W, C)``.
        a, b: the two source images, same height and width.
    """
    return channel_mean(_nabf_plane, fused, a, b)
