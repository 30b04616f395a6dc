"""Fusion metrics: values worked out by hand on tiny arrays, invariants, input checks, and DESIGN.md's
TNO x4 reference rows reproduced on the real images."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fsdiff_diffusers.fusion import laplacian_pyramid_fusion
from fsdiff_diffusers.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    average_gradient,
    correlation_coefficient,
    edge_transfer,
    entropy,
    evaluate,
    metric_names,
    ms_ssim,
    mutual_information,
    nabf,
    psnr,
    qabf,
    scd,
    spatial_frequency,
    ssim,
    standard_deviation,
    vif,
)
from fsdiff_diffusers.metrics.gradient import _edge_transfer_sums

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
LN2 = math.log(2)

# 2x2 ramp used by several hand computations.
RAMP = np.array([[0.0, 2.0], [4.0, 6.0]])
# Sources varying along x only (A) and y only (B); F = A + B holds both.
A_X = np.array([[0.0, 1.0], [0.0, 1.0]])
B_Y = np.array([[0.0, 0.0], [1.0, 1.0]])


def checkerboard(size: int, mean: float, amplitude: float) -> np.ndarray:
    """``mean +- amplitude`` in a checkerboard: under any wide symmetric Gaussian window its local mean is
    ``mean`` and its local variance ``amplitude^2`` (the window's response at the Nyquist frequency, of
    order 1e-10 for sigma 1.5, is negligible)."""
    signs = np.indices((size, size)).sum(0) % 2 * 2 - 1
    return mean + amplitude * signs


def random_triplet(shape=(64, 72), seed: int = 0):
    """A smooth-ish source, a noisy one and their rounded mean, all in 0..255."""
    rng = np.random.default_rng(seed)
    a = np.round(np.clip(np.cumsum(rng.normal(0, 6, shape), axis=1) + 128, 0, 255))
    b = rng.integers(0, 256, shape).astype(np.float64)
    return np.round((a + b) / 2), a, b


# --------------------------------------------------------------------------------------------------
# Hand computations
# --------------------------------------------------------------------------------------------------


def test_entropy_by_hand():
    # floor (VIFB): levels 0, 0, 1, 2 -> p = 1/2, 1/4, 1/4 -> EN = 1/2 + 1/4 * 2 + 1/4 * 2 = 1.5 bits.
    # round (CDDFuse): levels 1, 1, 1, 2 -> p = 3/4, 1/4 -> EN = -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.811278.
    image = np.array([[0.6, 0.7], [1.2, 2.5]])
    assert entropy(image) == pytest.approx(1.5)
    assert entropy(image, convention="cddfuse") == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


def test_standard_deviation_by_hand():
    # mean 3, squared deviations 9, 1, 1, 9 -> variance 20 / 4 = 5 -> SD = sqrt(5).
    assert standard_deviation(RAMP) == pytest.approx(math.sqrt(5))


def test_spatial_frequency_by_hand():
    # Horizontal differences 2, 2 -> sum of squares 8; vertical differences 4, 4 -> 32.
    # VIFB: sqrt((8 + 32) / (2 * 2)) = sqrt(10). CDDFuse: sqrt(8 / 2 + 32 / 2) = sqrt(20).
    assert spatial_frequency(RAMP) == pytest.approx(math.sqrt(10))
    assert spatial_frequency(RAMP, convention="cddfuse") == pytest.approx(math.sqrt(20))


def test_average_gradient_by_hand():
    # Gx = 2 and Gy = 4 at every pixel (one-sided differences on a 2x2 image) -> sqrt((4 + 16) / 2) = sqrt(10).
    # VIFB: 4 * sqrt(10) / ((2 - 1) * (2 - 1)); CDDFuse: the mean, sqrt(10).
    assert average_gradient(RAMP) == pytest.approx(4 * math.sqrt(10))
    assert average_gradient(RAMP, convention="cddfuse") == pytest.approx(math.sqrt(10))


def test_mutual_information_by_hand():
    # F = [[0, 1], [2, 2]], A = [[10, 10.4], [11, 11]], B constant (shares nothing: MI(B, F) = 0).
    # VIFB: min-max normalisation gives F -> 0, 128, 255, 255 and A -> 0, 102, 255, 255: the same partition
    #   of the pixels, so MI(A, F) = H(F) = -(1/4 ln 1/4 + 1/4 ln 1/4 + 1/2 ln 1/2) = 1.5 ln 2.
    # CDDFuse: rounding gives A -> 10, 10, 11, 11: H(A) = ln 2, H(F) = 1.5 ln 2 and H(A, F) = 1.5 ln 2
    #   (pairs (10,0), (10,1), (11,2), (11,2)), so MI(A, F) = ln 2.
    fused = np.array([[0.0, 1.0], [2.0, 2.0]])
    a = np.array([[10.0, 10.4], [11.0, 11.0]])
    b = np.full((2, 2), 7.0)
    assert mutual_information(fused, a, b) == pytest.approx(1.5 * LN2)
    assert mutual_information(fused, a, b, convention="cddfuse") == pytest.approx(LN2)


def test_correlation_metrics_by_hand():
    # F = A_X + B_Y = [[0, 1], [1, 2]]: F - B = A and F - A = B, so SCD = corr(A, A) + corr(B, B) = 2.
    # corr(A, F): centred A = (-1/2, 1/2, -1/2, 1/2), centred F = (-1, 0, 0, 1): sum of products 1,
    #   norms 1 and sqrt(2) -> 1 / sqrt(2); the same for B, so CC = 1 / sqrt(2).
    fused = A_X + B_Y
    assert scd(fused, A_X, B_Y) == pytest.approx(2.0)
    assert correlation_coefficient(fused, A_X, B_Y) == pytest.approx(1 / math.sqrt(2))
    # F = A: corr(A - B, A) = (0 + 1/2 + 1/2 + 0) / (sqrt(2) * 1) = 1 / sqrt(2); F - A = 0 is constant -> 0.
    assert scd(A_X, A_X, B_Y) == pytest.approx(1 / math.sqrt(2))


def test_psnr_by_hand():
    # F = 10 everywhere; A differs by 4 at one pixel (SSE 16), B = 12 everywhere (SSE 4 * 4 = 16).
    # VIFB: m = (sqrt(16) / 4 + sqrt(16) / 4) / 2 = 1 -> 20 log10(255 / 1) = 48.1308 dB.
    # MSE form: MSE = (4 + 4) / 2 = 4 -> 10 log10(255^2 / 4) = 42.1102 dB; CDDFuse peak max(F) = 10 ->
    # 10 log10(100 / 4) = 13.9794 dB.
    fused = np.full((2, 2), 10.0)
    a = np.array([[10.0, 10.0], [10.0, 14.0]])
    b = np.full((2, 2), 12.0)
    assert psnr(fused, a, b) == pytest.approx(20 * math.log10(255))
    assert psnr(fused, a, b, form="mse") == pytest.approx(10 * math.log10(255**2 / 4))
    assert psnr(fused, a, b, convention="cddfuse") == pytest.approx(10 * math.log10(100 / 4))
    assert psnr(fused, fused, fused) == math.inf


def test_ssim_by_hand():
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # 6.5025, 58.5225
    # Constants 100 (A) and 50 (F): no variance, so SSIM = (2 * 100 * 50 + C1) / (100^2 + 50^2 + C1)
    # = 10006.5025 / 12506.5025 = 0.800104; B = F adds 1.
    a, f = np.full((11, 11), 100.0), np.full((11, 11), 50.0)
    assert ssim(f, a, f) == pytest.approx((2 * 100 * 50 + c1) / (100**2 + 50**2 + c1) + 1)
    # Checkerboards 100 +- 20 (A) and 60 +- 10 (F), in phase: local means 100 and 60, variances 400 and
    # 100, covariance 200: SSIM = (12000 + C1) / (13600 + C1) * (400 + C2) / (500 + C2) = 0.724434.
    a, f = checkerboard(16, 100, 20), checkerboard(16, 60, 10)
    expected = (2 * 100 * 60 + c1) / (100**2 + 60**2 + c1) * (2 * 200 + c2) / (400 + 100 + c2)
    assert ssim(f, a, f) == pytest.approx(expected + 1, rel=1e-6)
    # CDDFuse: data range 2 -> C1 = (0.01 * 2)^2 = 4e-4; constants 1 and 2: (4 + C1) / (1 + 4 + C1).
    a, f = np.full((9, 9), 1.0), np.full((9, 9), 2.0)
    assert ssim(f, a, f, convention="cddfuse") == pytest.approx((4 + 4e-4) / (5 + 4e-4) + 1)


def test_ms_ssim_by_hand():
    # Constants stay constant at every scale: contrast-structure C2 / C2 = 1 at scales 1-4 and the
    # scale-5 SSIM is the luminance term 0.800104 of test_ssim_by_hand -> MS-SSIM = 0.800104 ** 0.1333.
    c1 = (0.01 * 255) ** 2
    a, f = np.full((176, 176), 100.0), np.full((176, 176), 50.0)
    expected = ((2 * 100 * 50 + c1) / (100**2 + 50**2 + c1)) ** 0.1333
    assert ms_ssim(f, a, f) == pytest.approx(expected + 1)


def test_vif_by_hand():
    # A = 100 +- 20 checkerboard, F = A / 2. At scale 1 every window sees variance 400 in A; gain g = 1/2
    # and residual variance 100 - g * 200 = 0 (clamped to 1e-10); the Gaussian pre-filter of scales 2-4
    # wipes out the checkerboard, leaving constants that add nothing. Hence
    # VIF(A, F) = log10(1 + g^2 * 400 / 2) / log10(1 + 400 / 2) = log10(51) / log10(201) = 0.741392,
    # and VIF(F, F) = 1 (B = F).
    a = checkerboard(48, 100, 20)
    assert vif(a / 2, a, a / 2) == pytest.approx(math.log10(51) / math.log10(201) + 1, rel=1e-6)


def test_qabf_by_hand():
    # F = 2A with B = A: wherever A has an edge, F's is twice as strong and equally oriented, so
    # relative strength 1/2 -> Q_g = 0.9994 / (1 + e^0) = 0.4997, alignment 1 ->
    # Q_a = 0.9879 / (1 + e^(-22 * 0.2)) = 0.975919; Qabf = Q_g * Q_a = 0.487666 whatever the weights.
    _, a, _ = random_triplet()
    expected = 0.4997 * 0.9879 / (1 + math.exp(-4.4))
    assert qabf(2 * a, a, a) == pytest.approx(expected)
    assert qabf(a / 2, a, a) == pytest.approx(expected)
    # Each source's term on its own: the same everywhere, so also the same after weighting.
    assert edge_transfer(2 * a, a) == pytest.approx(expected)


def test_nabf_by_hand():
    # A = B = horizontal ramp 0, 10, ..., 40 (4x5), F = 2A. Sobel / 8 of the ramp is 10 inside and 0 on the
    # first and last columns (mirror extension); F doubles it, so the 12 inner pixels are artefacts with
    # relative strength 1/2: Q = sqrt(0.9999 / 2 * 0.9995 / (1 + e^-11)) = 0.706889, weight 10^1.5 each;
    # the 8 border pixels weigh 0.001 each and are no artefacts. Nabf = (1 - Q) * 12 w / (12 w + 8 * 0.001).
    a = np.tile(np.arange(5) * 10.0, (4, 1))
    quality = math.sqrt(0.9999 / 2 * 0.9995 / (1 + math.exp(-11)))
    weight = 10**1.5
    assert nabf(2 * a, a, a) == pytest.approx((1 - quality) * 12 * weight / (12 * weight + 8 * 0.001))
    assert nabf(a, a, a) == 0.0


# --------------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["vifb", "cddfuse"])
def test_ssim_of_identical_images(convention):
    fused, a, _ = random_triplet()
    assert ssim(a, a, a, convention=convention) == pytest.approx(2.0)  # SSIM(A, A) = 1 per source
    assert ssim(fused, a, a, convention=convention) < 2.0


def test_cddfuse_ssim_matches_scikit_image():
    # CDDFuse's Evaluator.SSIM: skimage structural_similarity(F, X) on float images, data range 2.
    metrics = pytest.importorskip("skimage.metrics")
    fused, a, b = random_triplet()
    expected = sum(metrics.structural_similarity(fused, source, data_range=2) for source in (a, b))
    assert ssim(fused, a, b, convention="cddfuse") == pytest.approx(expected, rel=1e-12)


def test_ms_ssim_of_identical_images():
    fused, a, _ = random_triplet((176, 180))
    assert ms_ssim(a, a, a) == pytest.approx(2.0)
    assert ms_ssim(fused, a, a) < 2.0


def test_mutual_information_of_an_image_with_itself_is_its_entropy_in_nats():
    _, a, _ = random_triplet()
    a[0, 0], a[0, 1] = 0, 255  # full range: VIFB's min-max normalisation is then the identity
    for convention in ("vifb", "cddfuse"):
        assert mutual_information(a, a, a, convention=convention) == pytest.approx(2 * entropy(a) * LN2)


def test_qabf_of_a_perfect_copy_is_its_maximum():
    # F = A = B: relative strength is the strength itself (metricsQabf.m's equal-strength branch), so
    # Q_g = 0.9994 on edges of strength >= 1, and Q_a = 0.9879 / (1 + e^-4.4): 0.975333, not 1.
    _, a, _ = random_triplet()
    assert qabf(a, a, a) == pytest.approx(0.9994 * 0.9879 / (1 + math.exp(-4.4)), rel=1e-6)
    assert vif(a, a, a) == pytest.approx(2.0)
    assert nabf(a, a, a) == 0.0


@pytest.mark.parametrize(
    "name", [name for name in METRICS if name not in ("EN", "SD", "SF", "AG", "MS-SSIM", "Q_ir", "Q_vi")]
)
@pytest.mark.parametrize("convention", ["vifb", "cddfuse"])
def test_two_source_metrics_are_symmetric(name, convention):
    fused, a, b = random_triplet()
    assert METRICS[name](fused, a, b, convention) == pytest.approx(METRICS[name](fused, b, a, convention), rel=1e-12)


@pytest.mark.parametrize("convention", ["vifb", "cddfuse"])
def test_swapping_the_sources_swaps_q_ir_and_q_vi(convention):
    fused, a, b = random_triplet()
    scores = evaluate(fused, a, b, metrics=["Q_ir", "Q_vi"], convention=convention)
    swapped = evaluate(fused, b, a, metrics=["Q_ir", "Q_vi"], convention=convention)
    assert (swapped["Q_ir"], swapped["Q_vi"]) == (scores["Q_vi"], scores["Q_ir"])
    assert scores["Q_ir"] != scores["Q_vi"]
    # One convention only, like Qabf.
    assert scores == evaluate(fused, a, b, metrics=["Q_ir", "Q_vi"], convention="vifb")


def test_qabf_is_the_edge_weighted_average_of_q_ir_and_q_vi():
    fused, a, b = random_triplet()
    (preserved_a, weight_a), (preserved_b, weight_b) = _edge_transfer_sums(fused, a, b)
    q_ir, q_vi = edge_transfer(fused, a), edge_transfer(fused, b)
    assert (q_ir, q_vi) == (preserved_a / weight_a, preserved_b / weight_b)
    assert qabf(fused, a, b) == pytest.approx((q_ir * weight_a + q_vi * weight_b) / (weight_a + weight_b), rel=1e-12)
    assert min(q_ir, q_vi) < qabf(fused, a, b) < max(q_ir, q_vi)


def test_a_copy_of_one_source_transfers_its_edges_only(data_dir):
    # fused = infrared on a real TNO pair: Q_ir is Qabf's ceiling for a perfect copy (exactly what Qabf gives for
    # F = A = B), Q_vi far below it; and the other way round for fused = visible.
    from PIL import Image

    folder = data_dir / "TNO"
    if not (folder / "ir").is_dir():
        pytest.skip(f"TNO data not found under {folder}")
    name = sorted(path.name for path in (folder / "ir").glob("*.png"))[0]
    infrared, visible = (np.asarray(Image.open(folder / m / name).convert("L"), np.float64) for m in ("ir", "vi"))
    ceiling = 0.9994 * 0.9879 / (1 + math.exp(-4.4))
    for source, own, other in ((infrared, "Q_ir", "Q_vi"), (visible, "Q_vi", "Q_ir")):
        scores = evaluate(source, infrared, visible, metrics=["Q_ir", "Q_vi", "Qabf"])
        assert scores[own] == pytest.approx(qabf(source, source, source), rel=1e-12)
        assert scores[own] == pytest.approx(ceiling, rel=1e-3)
        assert scores[other] < 0.5 * scores[own] and scores[other] < scores["Qabf"] < scores[own]


def test_constant_images_give_defined_finite_values():
    # F = 50, A = 100, B = 150 everywhere, 176x176 (N = 176^2 pixels). By hand: no histogram spread (EN 0,
    # MI 0), no differences (SF, AG 0), no variance (SD 0, correlations 0; VIF's 0 / 0 is 1 per source),
    # SSIM / MS-SSIM from the luminance term only. Qabf: the zero-padded Sobel sees edges on the border,
    # c * v for a constant c, so F's are half as strong as A's and a third of B's, equally oriented:
    # Qabf = Q_a(1) * (Q_g(1/2) * 100 + Q_g(1/3) * 150) / 250 with Q_g(r) = 0.9994 / (1 + e^(-15 (r - 0.5))).
    # Nabf: the mirror extension has no edges -> 0. PSNR (VIFB): sqrt(SSE) / N = 50 / sqrt(N) and
    # 100 / sqrt(N) -> m = 75 / 176 -> 20 log10(255 / sqrt(75 / 176)).
    c1 = (0.01 * 255) ** 2
    shape = (176, 176)
    fused, a, b = np.full(shape, 50.0), np.full(shape, 100.0), np.full(shape, 150.0)
    luminance = [(2 * 50 * other + c1) / (50**2 + other**2 + c1) for other in (100, 150)]

    def q_g(relative):
        return 0.9994 / (1 + math.exp(-15 * (relative - 0.5)))

    q_a = 0.9879 / (1 + math.exp(-4.4))
    expected = {
        "EN": 0.0, "SD": 0.0, "SF": 0.0, "AG": 0.0, "MI": 0.0, "SCD": 0.0, "VIF": 2.0,
        "Qabf": q_a * (q_g(1 / 2) * 100 + q_g(1 / 3) * 150) / 250, "Q_ir": q_a * q_g(1 / 2), "Q_vi": q_a * q_g(1 / 3),
        "Nabf": 0.0,
        "SSIM": sum(luminance), "MS-SSIM": sum(value**0.1333 for value in luminance), "CC": 0.0,
        "PSNR": 20 * math.log10(255 / math.sqrt(75 / 176)),
    }  # fmt: skip
    assert evaluate(fused, a, b) == pytest.approx(expected)
    assert all(math.isfinite(value) for value in evaluate(fused, a, b, convention="cddfuse").values())
    # Sources without any edge (zero images): Qabf's and Q_ir's / Q_vi's 0 / 0 is defined as 0.
    zeros = np.zeros(shape)
    assert qabf(fused, zeros, zeros) == 0.0 and edge_transfer(fused, zeros) == 0.0


def test_metrics_follow_their_direction_on_a_degraded_fusion():
    fused, a, b = random_triplet((176, 176))
    worse = np.clip(fused + np.random.default_rng(1).normal(0, 40, fused.shape), 0, 255)
    good, bad = evaluate(fused, a, b), evaluate(worse, a, b)
    for name in ("MI", "SSIM", "MS-SSIM", "PSNR", "CC", "VIF"):
        assert (good[name] > bad[name]) == HIGHER_IS_BETTER[name], name
    assert good["Nabf"] < bad["Nabf"] and not HIGHER_IS_BETTER["Nabf"]


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def test_evaluate_names_are_case_insensitive_and_ordered():
    fused, a, b = random_triplet()
    scores = evaluate(fused, a, b, metrics=["qabf", "en", "Psnr"])
    assert list(scores) == ["Qabf", "EN", "PSNR"]
    assert scores["Qabf"] == qabf(fused, a, b)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(fused, a, b, metrics=["FMI"])
    assert metric_names(["q_IR", "Q_VI", "q_vi", "QABF"]) == ["Q_ir", "Q_vi", "Q_vi", "Qabf"]
    assert HIGHER_IS_BETTER["Q_ir"] and HIGHER_IS_BETTER["Q_vi"]
    with pytest.raises(ValueError, match="convention"):
        evaluate(fused, a, b, convention="matlab")


def test_evaluate_all_metrics_by_default():
    fused, a, b = random_triplet((176, 176))
    assert list(evaluate(fused, a, b)) == list(METRICS)
    assert list(METRICS) == [
        "EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "Q_ir", "Q_vi", "Nabf", "SSIM", "MS-SSIM", "CC", "PSNR",
    ]  # fmt: skip


def test_torch_uint8_and_float_inputs_agree():
    fused, a, b = random_triplet()
    reference = evaluate(fused, a, b, metrics=["EN", "MI", "SSIM", "Qabf"])
    as_uint8 = [image.astype(np.uint8) for image in (fused, a, b)]
    as_tensor = [torch.from_numpy(image).float() for image in (fused, a, b)]
    assert evaluate(*as_uint8, metrics=list(reference)) == pytest.approx(reference)
    assert evaluate(*as_tensor, metrics=list(reference)) == pytest.approx(reference)


def test_colour_images_are_averaged_per_channel():
    fused, a, b = random_triplet()
    colour_fused = np.stack([fused, a, b], axis=-1)
    colour_a = np.stack([a, a, fused], axis=-1)
    # Per channel, with the grey source B used for every channel.
    expected = np.mean([ssim(colour_fused[..., c], colour_a[..., c], b) for c in range(3)])
    assert ssim(colour_fused, colour_a, b) == pytest.approx(expected)
    assert entropy(np.stack([fused] * 3, axis=-1)) == pytest.approx(entropy(fused))
    assert entropy(fused[..., None]) == entropy(fused)
    # A colour source next to a grey result is turned grey with MATLAB's rgb2gray weights.
    grey = colour_a @ np.array([0.298936021293776, 0.587043074451121, 0.114020904255103])
    assert ssim(fused, colour_a, b) == pytest.approx(ssim(fused, grey, b))


def test_bad_inputs_raise():
    fused, a, b = random_triplet()
    with pytest.raises(ValueError, match=r"\(64, 72\).*\(64, 70\)"):
        qabf(fused, a[:, :70], b)
    with pytest.raises(ValueError, match="NaN"):
        ssim(np.where(fused > 100, np.nan, fused), a, b)
    with pytest.raises(ValueError, match="shape"):
        entropy(fused.ravel())
    with pytest.raises(ValueError, match="shape"):
        entropy(fused[None, ..., None])
    with pytest.raises(ValueError, match="channels"):
        entropy(np.stack([fused, fused], axis=-1))
    with pytest.raises(ValueError, match="176x176"):
        ms_ssim(fused, a, b)
    with pytest.raises(ValueError, match="form"):
        psnr(fused, a, b, form="db")
    with pytest.raises(TypeError):
        entropy(fused.tolist())


# --------------------------------------------------------------------------------------------------
# Real data: DESIGN.md's TNO x4 rows
# --------------------------------------------------------------------------------------------------

TABLE_METRICS = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR"]
# DESIGN.md, "Reference numbers: TNO test set, x4" (VIFB conventions, PSNR in the MSE form).
REFERENCE_ROWS = {
    "mean": [6.173, 25.30, 3.00, 1.36, 1.375, 1.462, 0.365, 0.133, 1.347, 16.28],
    "max": [6.819, 39.17, 4.57, 1.98, 2.110, 1.463, 0.435, 0.207, 1.279, 13.41],
    "laplacian": [6.734, 31.42, 5.73, 2.57, 1.136, 1.504, 0.417, 0.209, 1.306, 15.89],
}


def _tno_x4_pairs():
    """HR sources and their bicubic x4 round trips, protocol of DESIGN.md."""
    from PIL import Image

    folder = DATA_DIR / "TNO"
    if not (folder / "ir").is_dir():
        pytest.skip(f"TNO data not found under {folder}")
    pairs = []
    for path in sorted((folder / "ir").glob("*.png")):
        hr, up = [], []
        for modality in ("ir", "vi"):
            image = Image.open(folder / modality / path.name).convert("L")
            image = image.crop((0, 0, image.width - image.width % 4, image.height - image.height % 4))
            low = image.resize((image.width // 4, image.height // 4), Image.BICUBIC)
            hr.append(np.asarray(image, dtype=np.float64))
            up.append(np.asarray(low.resize(image.size, Image.BICUBIC), dtype=np.float64))
        pairs.append((hr, up))
    return pairs


@pytest.mark.parametrize("rule", ["mean", "max", "laplacian"])
def test_tno_x4_reference_rows(rule):
    pairs = _tno_x4_pairs()
    assert len(pairs) == 25
    rows = []
    for (ir, vi), (ir_up, vi_up) in pairs:
        # The table's "mean" image is stored as 8-bit, rounded half to even (EN is 6.362 unrounded).
        if rule == "mean":
            fused = np.round((ir_up + vi_up) / 2)
        elif rule == "max":
            fused = np.maximum(ir_up, vi_up)
        else:
            sources = [torch.from_numpy(x / 255)[None, None] for x in (ir_up, vi_up)]
            fused = laplacian_pyramid_fusion(*sources)[0, 0].numpy() * 255
        scores = evaluate(fused, ir, vi, metrics=TABLE_METRICS[:-1])
        scores["PSNR"] = psnr(fused, ir, vi, form="mse")
        rows.append([scores[name] for name in TABLE_METRICS])
    means = np.mean(rows, axis=0)
    # All within 0.25 % of the table (mostly its rounding); the largest gaps are Qabf 0.1333 vs 0.133 and
    # SF 2.9948 vs 3.00 for "mean" (the CDDFuse form of SF, a mean over M (N - 1) differences, gives 2.998).
    for name, ours, reference in zip(TABLE_METRICS, means, REFERENCE_ROWS[rule]):
        assert ours == pytest.approx(reference, rel=0.005), name
