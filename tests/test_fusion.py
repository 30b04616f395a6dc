"""Tests of the classical fusion rules: hand-checked tiny cases, batching, sizes, dtypes, errors, real data."""

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from fsdiff_diffusers.fusion import (
    FUSION_METHODS,
    box_filter,
    fuse,
    guided_filter,
    guided_filter_fusion,
    guided_filtering,
    laplacian_pyramid,
    laplacian_pyramid_fusion,
    max_fusion,
    mean_fusion,
    reconstruct_laplacian_pyramid,
)

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_pair(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=dtype), torch.rand(shape, generator=generator, dtype=dtype)


def spatial_frequency(image: torch.Tensor) -> float:
    """sqrt(mean(dx^2) + mean(dy^2)) of one grey image."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return float((dx.pow(2).mean() + dy.pow(2).mean()).sqrt())


# ----------------------------------------------------------------------------- pixel-wise rules


def test_mean_and_max_exact_values():
    infrared = torch.tensor([[[[0.0, 0.2], [1.0, 0.5]]]])
    visible = torch.tensor([[[[1.0, 0.6], [0.0, 0.25]]]])
    assert torch.equal(mean_fusion(infrared, visible), torch.tensor([[[[0.5, 0.4], [0.5, 0.375]]]]))
    assert torch.equal(max_fusion(infrared, visible), torch.tensor([[[[1.0, 0.6], [1.0, 0.5]]]]))


def test_fuse_dispatches_to_each_rule():
    infrared, visible = random_pair(2, 1, 12, 9)
    rules = {
        "gff": guided_filter_fusion,
        "laplacian": laplacian_pyramid_fusion,
        "laplacian_max": partial(laplacian_pyramid_fusion, base="max"),
        "mean": mean_fusion,
        "max": max_fusion,
    }
    assert set(FUSION_METHODS) == set(rules)
    for method, rule in rules.items():
        assert torch.equal(fuse(infrared, visible, method=method), rule(infrared, visible))
    one_level = laplacian_pyramid_fusion(infrared, visible, 1)
    assert torch.equal(fuse(infrared, visible, method="laplacian", levels=1), one_level)


def test_laplacian_max_keeps_the_brighter_base_and_both_sources_details():
    """A bright flat infrared target over a textured dark visible image: `max` drops the texture, `laplacian_max`
    keeps both the target's level and the texture; the averaged base of `laplacian` lowers the target's level."""
    texture = 0.1 + 0.1 * (torch.arange(64.0) % 2)  # one-pixel stripes
    visible = texture.expand(1, 1, 64, 64).clone()
    infrared = torch.zeros(1, 1, 64, 64)
    infrared[..., 16:48, 16:48] = 0.9
    fused = fuse(infrared, visible, "laplacian_max")
    target = fused[..., 24:40, 24:40]
    assert target.mean() > 0.85 and target.std() > 0.03  # the infrared level, with the visible stripes
    assert fuse(infrared, visible, "max")[..., 24:40, 24:40].std() < 1e-6
    assert fuse(infrared, visible, "laplacian")[..., 24:40, 24:40].mean() < 0.75
    with pytest.raises(ValueError, match="`base` must be one of"):
        laplacian_pyramid_fusion(infrared, visible, base="median")


# ----------------------------------------------------------------------------- Laplacian pyramid


@pytest.mark.parametrize("size", [(64, 64), (37, 50), (5, 7), (2, 2), (1, 6), (1, 1)])
def test_pyramid_reconstruction_is_exact(size):
    image = torch.rand(2, 3, *size, dtype=torch.float64)
    pyramid = laplacian_pyramid(image, levels=4)
    torch.testing.assert_close(reconstruct_laplacian_pyramid(pyramid), image, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "size, bands, base_size",
    [((64, 64), 4, (4, 4)), ((37, 50), 4, (3, 4)), ((5, 7), 2, (2, 2)), ((2, 2), 1, (1, 1)), ((1, 6), 0, (1, 6))],
)
def test_pyramid_depth_adapts_to_small_images(size, bands, base_size):
    pyramid = laplacian_pyramid(torch.rand(1, 1, *size), levels=4)
    assert len(pyramid) == bands + 1
    assert tuple(pyramid[0].shape[-2:]) == size
    assert tuple(pyramid[-1].shape[-2:]) == base_size


def test_pyramid_of_constant_has_no_interior_details():
    """Away from the borders a constant has no details and a constant base. At the borders, the symmetric padding
    of the zero-filled expansion (the convention that reproduces DESIGN.md's reference row) leaves a ripple that the
    reconstruction removes again exactly."""
    image = torch.full((1, 1, 40, 36), 0.3, dtype=torch.float64)
    pyramid = laplacian_pyramid(image, levels=2)
    assert pyramid[0][..., 3:-3, 3:-3].abs().max() < 1e-15
    assert pyramid[1][..., 3:-3, 3:-3].abs().max() < 1e-15
    torch.testing.assert_close(pyramid[-1][..., 3:-3, 3:-3], torch.full_like(pyramid[-1][..., 3:-3, 3:-3], 0.3))
    torch.testing.assert_close(reconstruct_laplacian_pyramid(pyramid), image, rtol=0, atol=1e-14)


def test_laplacian_fusion_of_identical_sources_returns_them():
    image = torch.rand(2, 1, 31, 17, dtype=torch.float64)
    torch.testing.assert_close(laplacian_pyramid_fusion(image, image), image, rtol=0, atol=1e-12)


def test_laplacian_fusion_with_a_black_image_keeps_the_details():
    # A black image has no details anywhere (a non-zero constant has a border ripple, see above).
    image = 0.25 + 0.5 * torch.rand(1, 1, 40, 33, dtype=torch.float64)
    constant = torch.zeros_like(image)
    pyramid = laplacian_pyramid(image, levels=3)
    expected = reconstruct_laplacian_pyramid(pyramid[:-1] + [pyramid[-1] / 2]).clamp(0, 1)
    torch.testing.assert_close(laplacian_pyramid_fusion(image, constant, levels=3), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(laplacian_pyramid_fusion(constant, image, levels=3), expected, rtol=0, atol=1e-12)


def test_laplacian_fusion_with_zero_levels_is_the_mean():
    infrared, visible = random_pair(1, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(laplacian_pyramid_fusion(infrared, visible, levels=0), mean_fusion(infrared, visible))


# ----------------------------------------------------------------------------- box and guided filters


@pytest.mark.parametrize("radius", [0, 1, 3, 20])
def test_box_filter_matches_brute_force_window_means(radius):
    image = torch.rand(2, 1, 9, 13, dtype=torch.float64)
    expected = torch.empty_like(image)
    for row in range(9):
        for column in range(13):
            window = image[..., max(row - radius, 0) : row + radius + 1, max(column - radius, 0) : column + radius + 1]
            expected[..., row, column] = window.mean((-2, -1))
    torch.testing.assert_close(box_filter(image, radius), expected, rtol=0, atol=1e-12)


def test_guided_filter_with_itself_as_guide_and_tiny_eps_returns_the_image():
    image = torch.rand(2, 3, 20, 15, dtype=torch.float64)
    torch.testing.assert_close(guided_filter(image, image, radius=2, eps=1e-12), image, rtol=0, atol=1e-6)


def test_guided_filter_with_huge_eps_is_the_box_mean():
    image, guide = random_pair(1, 1, 20, 15, dtype=torch.float64)
    expected = box_filter(box_filter(image, 3), 3)  # a -> 0, b -> box mean; the output averages b again
    torch.testing.assert_close(guided_filter(image, guide, radius=3, eps=1e9), expected, rtol=0, atol=1e-8)


def test_guided_filter_keeps_a_step_edge_of_the_guide():
    guide = torch.zeros(1, 1, 16, 16)
    guide[..., 8:] = 1.0
    filtered = guided_filter(guide, guide, radius=4, eps=1e-4)
    torch.testing.assert_close(filtered, guide, rtol=0, atol=1e-3)
    smoothed = box_filter(box_filter(guide, 4), 4)
    assert (smoothed - guide).abs().max() > 0.3  # what a plain box filter does to the edge


# ----------------------------------------------------------------------------- guided-filtering fusion


def test_gff_of_identical_sources_returns_them():
    image = torch.rand(2, 1, 48, 40)
    torch.testing.assert_close(guided_filter_fusion(image, image), image, rtol=0, atol=1e-5)


def test_gff_prefers_the_source_with_details():
    textured = 0.5 + 0.4 * torch.sin(torch.arange(64.0) * 1.3).expand(1, 1, 64, 64)
    flat = torch.full_like(textured, 0.5)
    fused = guided_filter_fusion(textured, flat)
    assert (fused - textured).abs().mean() < 0.1 * (flat - textured).abs().mean()


# ----------------------------------------------------------------------------- all rules: shapes, batching, dtypes


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_batch_equals_per_sample(method, monkeypatch):
    infrared, visible = random_pair(3, 1, 21, 18, dtype=torch.float64)
    batched = fuse(infrared, visible, method=method)
    monkeypatch.setattr(guided_filtering, "_CPU_CHUNK_PIXELS", 1)  # one image per guided-filter chunk
    for index in range(3):
        single = fuse(infrared[index : index + 1], visible[index : index + 1], method=method)
        torch.testing.assert_close(batched[index : index + 1], single, rtol=0, atol=1e-12)
    torch.testing.assert_close(fuse(infrared, visible, method=method), batched, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_colour_is_fused_per_channel(method):
    infrared, visible = random_pair(2, 3, 16, 11, dtype=torch.float64)
    fused = fuse(infrared, visible, method=method)
    for channel in range(3):
        single = fuse(infrared[:, channel : channel + 1], visible[:, channel : channel + 1], method=method)
        torch.testing.assert_close(fused[:, channel : channel + 1], single, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", FUSION_METHODS)
@pytest.mark.parametrize("size", [(5, 7), (2, 2), (1, 1), (1, 9), (33, 3)])
def test_odd_and_tiny_sizes(method, size):
    infrared, visible = random_pair(2, 1, *size)
    fused = fuse(infrared, visible, method=method)
    assert fused.shape == infrared.shape
    assert torch.isfinite(fused).all() and fused.min() >= 0 and fused.max() <= 1


@pytest.mark.parametrize("method", FUSION_METHODS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device", DEVICES)
def test_dtype_and_device_follow_the_input(method, dtype, device):
    infrared, visible = (image.to(device=device, dtype=dtype) for image in random_pair(2, 1, 24, 19))
    fused = fuse(infrared, visible, method=method)
    assert fused.dtype == dtype and fused.device == infrared.device and fused.shape == infrared.shape
    reference = fuse(infrared.double().cpu(), visible.double().cpu(), method=method)
    tolerance = {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 1e-2)
    torch.testing.assert_close(fused.cpu().double(), reference, rtol=0, atol=tolerance)


# ----------------------------------------------------------------------------- errors


def test_unknown_method_lists_the_valid_ones():
    infrared, visible = random_pair(1, 1, 4, 4)
    with pytest.raises(ValueError, match="gff, laplacian, laplacian_max, mean, max"):
        fuse(infrared, visible, method="wavelet")


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_mismatched_shapes_name_both(method):
    with pytest.raises(ValueError, match=r"infrared \(1, 1, 4, 4\) and visible \(1, 1, 4, 5\)"):
        fuse(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5), method=method)


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_non_4d_input_names_the_layout(method):
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        fuse(torch.rand(4, 4), torch.rand(4, 4), method=method)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        fuse(torch.rand(1, 4, 4), torch.rand(1, 4, 4), method=method)


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_nan_is_rejected(method):
    infrared, visible = random_pair(1, 1, 4, 4)
    visible[0, 0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="`visible` contains NaN"):
        fuse(infrared, visible, method=method)


def test_other_bad_inputs():
    infrared, visible = random_pair(1, 1, 4, 4)
    with pytest.raises(ValueError, match="floating-point"):
        fuse((infrared * 255).to(torch.uint8), (visible * 255).to(torch.uint8), method="mean")
    with pytest.raises(ValueError, match="dtype and device"):
        fuse(infrared, visible.double(), method="max")
    with pytest.raises(ValueError, match="levels"):
        laplacian_pyramid_fusion(infrared, visible, levels=-1)
    with pytest.raises(ValueError, match="eps"):
        guided_filter(infrared, visible, radius=2, eps=0)
    with pytest.raises(ValueError, match=r"image \(1, 1, 4, 4\) and guide \(1, 1, 3, 4\)"):
        guided_filter(infrared, visible[..., :3, :], radius=2, eps=0.1)


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def tno_pair():
    paths = [DATA_DIR / "TNO" / folder / "01.png" for folder in ("ir", "vi")]
    if not all(path.exists() for path in paths):
        pytest.skip(f"TNO pair 01 not found under {DATA_DIR} (the shared data folder is absent)")
    from PIL import Image

    def load(path):
        grey = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255
        return torch.from_numpy(grey)[None, None]

    return load(paths[0]), load(paths[1])


def test_real_pair_every_method_runs_and_gff_laplacian_are_sharper_than_mean(tno_pair):
    infrared, visible = tno_pair
    fused = {method: fuse(infrared, visible, method=method) for method in FUSION_METHODS}
    for image in fused.values():
        assert image.shape == infrared.shape and image.min() >= 0 and image.max() <= 1
    mean_sf = spatial_frequency(fused["mean"])
    assert spatial_frequency(fused["gff"]) > mean_sf
    assert spatial_frequency(fused["laplacian"]) > mean_sf


def test_real_pair_gff_float32_matches_float64(tno_pair):
    # 8-bit images have flat windows where float32 window variances would cancel catastrophically (eps2 = 1e-6).
    infrared, visible = tno_pair
    single = guided_filter_fusion(infrared, visible)
    double = guided_filter_fusion(infrared.double(), visible.double())
    torch.testing.assert_close(single.double(), double, rtol=0, atol=1e-4)
