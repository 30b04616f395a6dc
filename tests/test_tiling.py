"""Tiled denoising (`tile_size`, `tile_overlap`) and thresholding of samples too large for `torch.quantile`."""

import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from PIL import Image

from fsdiff_diffusers import FSDiffPipeline
from fsdiff_diffusers.example_pair import example_pair
from fsdiff_diffusers.pipelines import thresholding
from fsdiff_diffusers.pipelines.tiling import FSDiffTilingMixin, blend_weights, plan_tiles, tile_spans

from .conftest import tiny_pipeline


def fuse(pipe: FSDiffPipeline, infrared, visible, **kwargs) -> np.ndarray:
    kwargs = {"scale": 2, "num_inference_steps": 2, "output_type": "np", **kwargs}
    return pipe(infrared, visible, generator=torch.Generator().manual_seed(0), **kwargs).images


@pytest.fixture
def shipped(one_thread) -> FSDiffPipeline:
    pipe = FSDiffPipeline.from_pretrained("fsdiff-ir-vis")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize(
    "canvas, tile, overlap, multiple",
    [((1088, 1920), 512, 64, 16), ((2176, 3856), 1024, 128, 16), ((96, 200), 48, 16, 8), ((64, 64), 64, 8, 8)],
)
def test_tiles_cover_the_canvas_on_the_unet_grid_and_overlap(canvas, tile, overlap, multiple):
    tiles = plan_tiles(canvas, tile, overlap, multiple)
    covered = torch.zeros(canvas, dtype=torch.int)
    for t in tiles:
        assert t.rows.start % multiple == 0 and t.cols.start % multiple == 0
        assert t.rows.stop - t.rows.start <= tile and t.cols.stop - t.cols.start <= tile
        covered[t.rows, t.cols] += 1
    assert covered.min() >= 1
    for length in canvas:
        spans = tile_spans(length, min(tile, length), overlap, multiple)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(stop - start >= overlap - multiple // 2 for (_, stop), (start, _) in zip(spans, spans[1:]))
        if len(spans) > 1:  # as few tiles as cover the axis, no longer than needed
            assert len(spans) == len(tile_spans(length, tile, overlap, multiple))
            size = spans[0][1] - spans[0][0]
            assert size * len(spans) - (len(spans) - 1) * overlap < length + len(spans) * multiple
    weights = blend_weights(tiles, canvas, overlap, torch.device("cpu"))
    assert weights.min() > 0


def test_a_4k_canvas_costs_at_most_a_third_more_than_one_pass():
    tiles = plan_tiles((2176, 3856), 1024, 128, 16)
    tiled = sum((t.rows.stop - t.rows.start) * (t.cols.stop - t.cols.start) for t in tiles)
    assert len(tiles) == 15 and tiled < 1.33 * 2176 * 3856


def test_tile_weights_ramp_only_towards_neighbours():
    top_left, top_right = plan_tiles((64, 96), 64, 16, 8)  # two tiles of 64x56, overlapping by 16
    assert (top_left.cols, top_right.cols) == (slice(0, 56), slice(40, 96))
    weight = top_left.weight(16)
    assert weight.shape == (64, 56)
    np.testing.assert_allclose(weight[:, :40], 1)  # no neighbour above, below or to the left
    assert (weight[:, -16:].diff(dim=1) < 0).all() and 0 < weight[0, -1] < 0.01
    # Across the overlap the two weights are a sin² / cos² pair: they sum to one.
    np.testing.assert_allclose(weight[0, -16:] + top_right.weight(16)[0, :16], 1, atol=1e-6)


def test_a_tile_as_large_as_the_canvas_is_the_untiled_call(pipe, pair):
    np.testing.assert_array_equal(fuse(pipe, *pair, tile_size=64), fuse(pipe, *pair))


def test_tiled_calls_follow_the_tiles_and_are_deterministic(pipe, pair, monkeypatch):
    calls = []
    original = FSDiffTilingMixin.predict_tiles
    monkeypatch.setattr(
        FSDiffTilingMixin, "predict_tiles", lambda self, *args: calls.append(len(args[5])) or original(self, *args)
    )
    infrared, visible = pair
    first = fuse(pipe, infrared, visible, scale=4, tile_size=32, tile_overlap=8)  # canvas 56x72: 2x3 tiles
    assert calls == [6, 6]  # every step, every tile
    assert first.shape == (1, 48, 64, 3) and np.isfinite(first).all()
    np.testing.assert_array_equal(fuse(pipe, infrared, visible, scale=4, tile_size=32, tile_overlap=8), first)


def test_tiling_turns_on_above_the_pixel_budget_or_the_memory(pipe, pair, monkeypatch):
    device = torch.device("cpu")
    assert pipe.tile_size_for((12, 16), (24, 32), 1, device, None) is None
    assert pipe.tile_size_for((12, 16), (24, 32), 1, device, 16) == 16
    assert pipe.tile_size_for((12, 16), (24, 32), 1, device, 40) is None  # the 32x40 canvas fits into one tile
    monkeypatch.setattr(pipe, "max_untiled_pixels", 1000)
    assert pipe.tile_size_for((120, 160), (2400, 3200), 1, device, None) == 1024
    monkeypatch.setattr(pipe, "max_untiled_pixels", 10**9)
    monkeypatch.setattr("fsdiff_diffusers.pipelines.tiling.available_memory", lambda device: 2**30)
    assert pipe.tile_size_for((120, 160), (2400, 3200), 1, device, None) == 1024  # 3.4 GiB untiled
    assert pipe.tile_size_for((120, 160), (240, 320), 1, device, None) is None


def test_tiled_memory_is_one_tile_plus_the_whole_image_tensors(pipe):
    untiled = pipe.estimate_memory((270, 480), (2160, 3840))
    tiled = pipe.estimate_memory((270, 480), (2160, 3840), tile_size=1024)
    larger = pipe.estimate_memory((540, 960), (4320, 7680), tile_size=1024)
    assert tiled < untiled / 3
    canvas = pipe.canvas_size(2160, 3840)
    assert tiled == (
        1024 * 1024 * pipe.canvas_pixel_bytes
        + canvas[0] * canvas[1] * pipe.tiled_canvas_pixel_bytes
        + 270 * 480 * pipe.source_pixel_bytes
    )
    assert larger - tiled < 3 * canvas[0] * canvas[1] * (pipe.tiled_canvas_pixel_bytes + pipe.source_pixel_bytes)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tile_size": 2}, r"`tile_size` must be an int of at least 4 .* got 2"),
        ({"tile_size": 64.0}, r"`tile_size` must be an int .* got 64\.0"),
        ({"tile_size": 64, "tile_overlap": 40}, r"`tile_overlap` must be an int from 0 to half of `tile_size` \(64\)"),
        ({"tile_overlap": -1}, r"`tile_overlap` must be an int from 0 .* got -1"),
        ({"tile_overlap": 600}, r"`tile_overlap` must be an int from 0 to half of the automatic tiles' size \(1024\)"),
    ],
)
def test_bad_tiling_arguments_are_named(pipe, pair, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fuse(pipe, *pair, **kwargs)


def test_tiles_with_batches_callbacks_and_clarity(pipe, pair):
    infrared, visible = pair
    seen = []

    def record(pipeline, step, timestep, tensors):
        seen.append(tuple(tensors["latents"].shape))
        return {}

    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    out = pipe(
        [infrared, infrared],
        [visible, visible],
        scale=4,
        num_inference_steps=2,
        output_type="np",
        generator=generators,
        tile_size=32,
        tile_overlap=8,
        callback_on_step_end=record,
        return_clarity=True,
    )
    assert out.images.shape == (2, 48, 64, 3) and seen == [(2, 1, 56, 72)] * 2
    assert out.clarity.shape == (2, 48, 64, 2) and 0 < out.clarity.min() and out.clarity.max() < 1
    np.testing.assert_allclose(out.clarity[0], out.clarity[1], atol=1e-6)  # same sources, same maps
    assert np.abs(out.images[0] - out.images[1]).max() > 1e-3  # other noise


def test_tiled_and_untiled_shipped_model_agree_on_the_example_pair(shipped):
    """On an image small enough for one pass, tiling changes the fused image by far less than one grey level."""
    infrared, visible = example_pair()  # 160x120 -> x4 640x480, canvas 672x512
    untiled = shipped(
        infrared, visible, generator=torch.Generator().manual_seed(0), output_type="np", return_clarity=True
    )
    tiled = shipped(
        infrared,
        visible,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
        tile_size=384,
        tile_overlap=128,
        return_clarity=True,
    )
    difference = np.abs(tiled.images - untiled.images) * 255
    assert difference.mean() < 1.0, difference.mean()
    assert np.abs(tiled.clarity - untiled.clarity).mean() < 0.05


def test_tiled_and_untiled_agree_on_validation_pairs(shipped, data_dir):
    names = json.loads((data_dir / "splits.json").read_text())["infrared_visible"]["validation"]["TNO_extra"]
    names = [name for name in names if "duine" in name][:2]  # 360x270: x2 gives 2x2 tiles of 512
    differences = []
    for name in names:
        infrared = Image.open(data_dir / "TNO_extra" / "ir" / name)
        visible = Image.open(data_dir / "TNO_extra" / "vi" / name)
        kwargs = {"scale": 2, "output_type": "np"}
        untiled = shipped(infrared, visible, generator=torch.Generator().manual_seed(0), **kwargs).images
        tiled = shipped(
            infrared, visible, generator=torch.Generator().manual_seed(0), tile_size=512, tile_overlap=128, **kwargs
        ).images
        differences.append(np.abs(tiled - untiled).mean() * 255)
    assert np.mean(differences) < 1.0, differences


def test_quantile_by_rank_is_torch_quantile():
    values = torch.rand(3, 1001, generator=torch.Generator().manual_seed(0))
    for q in (0.0, 0.5, 0.995, 1.0):
        torch.testing.assert_close(thresholding.quantile_by_rank(values, q), torch.quantile(values, q, dim=1))


def test_large_samples_are_thresholded_like_diffusers_does_small_ones(monkeypatch):
    scheduler = DDPMScheduler(thresholding=True, sample_max_value=2.0)
    sample = torch.randn(2, 1, 30, 40, generator=torch.Generator().manual_seed(0)) * 2
    expected = scheduler._threshold_sample(sample)
    torch.testing.assert_close(thresholding.threshold_sample(scheduler, sample), expected)
    monkeypatch.setattr(thresholding, "QUANTILE_MAX_VALUES", 100)  # 1200 values per image count as large
    with thresholding.large_sample_thresholding(scheduler, sample):
        assert "_threshold_sample" in vars(scheduler)
        torch.testing.assert_close(scheduler._threshold_sample(sample), expected)
    assert "_threshold_sample" not in vars(scheduler)  # the class's method again
    with thresholding.large_sample_thresholding(scheduler, sample[..., :10, :10]):
        assert "_threshold_sample" not in vars(scheduler)


def test_a_sample_beyond_torch_quantile_steps(one_thread):
    """An 8K output's sample (more than 2**24 values) goes through DPM-Solver++'s thresholding."""
    pipe = tiny_pipeline()
    sample = torch.rand(1, 1, 4352, 7696) * 4 - 2
    pipe.scheduler.set_timesteps(2)
    with thresholding.large_sample_thresholding(pipe.scheduler, sample):
        stepped = pipe.scheduler.step(sample, pipe.scheduler.timesteps[0], sample, return_dict=False)[0]
    assert stepped.shape == sample.shape and torch.isfinite(stepped).all()
