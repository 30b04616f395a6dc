"""Tests for `fsdiff_diffusers.image_processor`: input loading, colour conversion, batching, sizes, output."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from fsdiff_diffusers.image_processor import (
    FusionInputs,
    crop_to,
    load_image,
    output_size_for,
    pad_to_multiple,
    postprocess,
    prepare_pair_batch,
    resize,
    rgb_to_ycbcr,
    to_luminance,
    ycbcr_to_rgb,
)

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def _rng_uint8(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# --- load_image: every accepted kind -------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, channels",
    [
        ("L", 1),
        ("LA", 1),
        ("P", 3),
        ("RGB", 3),
        ("RGBA", 3),
        ("I;16", 1),
        ("I;16B", 1),
        ("I", 1),
        ("F", 1),
        ("1", 1),
        ("CMYK", 3),
    ],
)
def test_load_pil_modes(mode, channels):
    image = load_image(PIL.Image.new(mode, (5, 4)), "infrared")
    assert image.shape == (channels, 4, 5)
    assert image.dtype == torch.float32


def test_load_pil_values():
    assert load_image(PIL.Image.new("L", (3, 2), 255), "x").eq(1.0).all()
    assert load_image(PIL.Image.new("RGB", (3, 2), (255, 0, 51)), "x")[:, 0, 0].tolist() == pytest.approx([1, 0, 0.2])
    assert load_image(PIL.Image.new("I;16", (3, 2), 65535), "x").eq(1.0).all()
    assert load_image(PIL.Image.new("I;16B", (3, 2), 65535), "x").eq(1.0).all()
    assert load_image(PIL.Image.new("I", (3, 2), 32768), "x")[0, 0, 0].item() == pytest.approx(32768 / 65535)
    assert load_image(PIL.Image.new("F", (3, 2), 0.25), "x").eq(0.25).all()


def test_load_pil_drops_alpha():
    rgba = PIL.Image.new("RGBA", (3, 2), (10, 20, 30, 0))
    assert load_image(rgba, "x")[:, 0, 0].tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255])
    la = PIL.Image.new("LA", (3, 2), (100, 7))
    assert load_image(la, "x").eq(100 / 255).all()


def test_load_pil_palette():
    palette_image = PIL.Image.new("RGB", (4, 4), (200, 100, 0)).convert("P")
    image = load_image(palette_image, "x")
    assert image.shape == (3, 4, 4)
    assert image[:, 0, 0].tolist() == pytest.approx([200 / 255, 100 / 255, 0], abs=0.02)


@pytest.mark.parametrize(
    "shape, channels", [((4, 5), 1), ((4, 5, 1), 1), ((4, 5, 2), 1), ((4, 5, 3), 3), ((4, 5, 4), 3), ((1, 4, 5, 3), 3)]
)
def test_load_numpy_layouts(shape, channels):
    array = _rng_uint8(*shape)
    image = load_image(array, "visible")
    assert image.shape == (channels, 4, 5)
    expected = array.reshape(4, 5, -1)[..., :channels].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(image.numpy(), expected, atol=1e-7)


def test_load_numpy_dtypes():
    assert load_image(np.full((2, 2), 255, np.uint8), "x").eq(1.0).all()
    assert load_image(np.full((2, 2), 65535, np.uint16), "x").eq(1.0).all()
    assert load_image(np.full((2, 2), 65535, ">u2"), "x").eq(1.0).all()
    assert load_image(np.eye(2, dtype=bool), "x")[0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    for dtype in (np.float16, np.float32, np.float64):
        assert load_image(np.full((2, 2, 3), 0.5, dtype), "x").eq(0.5).all()


def test_load_does_not_alias_input():
    array, tensor = np.full((2, 2), 0.5, np.float32), torch.full((1, 2, 2), 0.5)
    load_image(array, "x")[0, 0, 0] = 0.0
    load_image(tensor, "x")[0, 0, 0] = 0.0
    assert array[0, 0] == 0.5 and tensor[0, 0, 0] == 0.5


@pytest.mark.parametrize("shape", [(4, 5), (1, 4, 5), (3, 4, 5), (4, 4, 5), (1, 3, 4, 5)])
def test_load_torch_layouts(shape):
    tensor = torch.rand(shape)
    image = load_image(tensor, "visible")
    channels = 1 if len(shape) == 2 or shape[-3] == 1 else 3
    assert image.shape == (channels, 4, 5)
    torch.testing.assert_close(image, tensor.reshape(-1, 4, 5)[:channels])


def test_load_torch_dtypes():
    assert load_image(torch.full((3, 2, 2), 255, dtype=torch.uint8), "x").eq(1.0).all()
    assert load_image(torch.full((2, 2), 0.5, dtype=torch.float16), "x").dtype == torch.float32
    assert load_image(torch.ones(2, 2, dtype=torch.bool), "x").eq(1.0).all()


def test_load_paths(tmp_path):
    rgb = _rng_uint8(6, 7, 3)
    PIL.Image.fromarray(rgb).save(tmp_path / "vi.png")
    deep = np.array([[0, 65535, 1000], [2, 3, 65535]], dtype=np.uint16)
    PIL.Image.fromarray(deep).save(tmp_path / "ir16.png")
    PIL.Image.fromarray(rgb[..., 0]).save(tmp_path / "ir.jpg", quality=95)

    np.testing.assert_allclose(load_image(tmp_path / "vi.png", "visible").numpy(), rgb.transpose(2, 0, 1) / 255.0)
    ir16 = load_image(str(tmp_path / "ir16.png"), "infrared")
    np.testing.assert_allclose(ir16[0].numpy(), deep / 65535.0, rtol=1e-6)
    assert ir16[0, 0, 1].item() == 1.0
    assert load_image(tmp_path / "ir.jpg", "infrared").shape == (1, 6, 7)


def test_grey_stored_as_rgb_stays_three_channels():
    grey = np.repeat(_rng_uint8(4, 4, 1), 3, axis=2)
    assert load_image(grey, "infrared").shape == (3, 4, 4)


# --- load_image: errors --------------------------------------------------------------------------


def test_load_missing_path_names_path(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ValueError, match=r"infrared.*nope\.png.*No such file"):
        load_image(missing, "infrared")


def test_load_unreadable_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"visible.*bad\.png.*cannot identify"):
        load_image(bad, "visible")
    with pytest.raises(ValueError, match="Is a directory"):
        load_image(tmp_path, "visible")


def test_load_url_rejected():
    with pytest.raises(ValueError, match="URLs are not supported, download"):
        load_image("https://example.com/a.png", "visible")


@pytest.mark.parametrize("value", [[np.zeros((2, 2))], 3, None, b"bytes"])
def test_load_unsupported_type(value):
    with pytest.raises(TypeError, match=r"Unsupported infrared image type .*Pass a file path, a PIL image"):
        load_image(value, "infrared")


@pytest.mark.parametrize("value", [np.zeros((4, 4, 5), np.uint8), torch.zeros(5, 4, 4), np.zeros((3, 8, 8), np.uint8)])
def test_load_bad_channel_count(value):
    with pytest.raises(ValueError, match=r"channels .*accepted channel counts are 1 \(grey\), 2 .*3 \(RGB\) or 4"):
        load_image(value, "visible")


def test_load_bad_ndim():
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2, 2, 2\); expected \(H, W\)"):
        load_image(np.zeros((2, 2, 2, 2, 2)), "x")
    with pytest.raises(ValueError, match=r"expected \(H, W\), \(C, H, W\)"):
        load_image(torch.zeros(4), "x")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_non_finite(bad):
    array = np.full((3, 3), 0.5, np.float32)
    array[1, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_image(array, "infrared")
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_image(torch.from_numpy(array), "infrared")


def test_load_float_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 255\].*divide 8-bit values by 255 or 16-bit values by 65535.*'auto'"):
        load_image(np.array([[0.0, 255.0], [1.0, 2.0]]), "visible", input_range="full")
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        load_image(torch.full((2, 2), -0.5), "visible", input_range="full")
    with pytest.raises(ValueError, match=r"input_range=\(low, high\)"):  # constant: no range of its own
        load_image(PIL.Image.new("F", (2, 2), 3.0), "visible")


# --- load_image: input_range ---------------------------------------------------------------------


def _radiometric(bits: int) -> np.ndarray:
    """Counts of a `bits`-bit infrared camera stored in uint16: a 400-count background and a hot 2x2 target."""
    counts = np.full((20, 20), 400, np.uint16) + np.arange(20, dtype=np.uint16)
    counts[5:7, 5:7] = 2**bits - 1
    return counts


@pytest.mark.parametrize("bits", [12, 14])
def test_auto_range_stretches_narrow_uint16(bits):
    """12- and 14-bit counts divided by 65535 leave the hot target at 6 % or 25 % grey; "auto" maps the image's own
    0.5-99.5 percentile range, so the target is white and the background dark."""
    counts = _radiometric(bits)
    faded = load_image(counts, "infrared", input_range="full")
    assert faded.max().item() == pytest.approx((2**bits - 1) / 65535)
    image, (low, high) = load_image(counts, "infrared", return_range=True)
    assert (low, high) == tuple(np.percentile(counts.astype(np.float32), [0.5, 99.5]))
    assert image[0, 5, 5].item() == 1.0 and image[0, 0, 0].item() == 0.0
    torch.testing.assert_close(image, ((torch.from_numpy(counts[None]).float() - low) / (high - low)).clamp(0, 1))
    for source in (PIL.Image.fromarray(counts), torch.from_numpy(counts.astype(np.int32)).to(torch.uint16)):
        torch.testing.assert_close(load_image(source, "infrared"), image)


def test_auto_range_maps_kelvin_floats():
    kelvin = np.linspace(280.0, 320.0, 400, dtype=np.float32).reshape(20, 20)
    image, (low, high) = load_image(PIL.Image.fromarray(kelvin, mode="F"), "infrared", return_range=True)
    assert 280 < low < 281 and 319 < high < 320
    assert image.min().item() == 0.0 and image.max().item() == 1.0


def test_auto_range_keeps_8_bit_unit_floats_and_wide_uint16_as_full():
    for image in (
        _rng_uint8(6, 7, 3),
        np.random.default_rng(0).random((6, 7), dtype=np.float32) * 0.2,  # dark, but already in [0, 1]
        np.array([[0, 40000], [3, 65535]], np.uint16),
        np.full((4, 4), 3000, np.uint16),  # constant: no range of its own
    ):
        auto, chosen = load_image(image, "x", return_range=True)
        assert torch.equal(auto, load_image(image, "x", input_range="full"))
        assert chosen == (0.0, {np.uint8: 255.0, np.float32: 1.0, np.uint16: 65535.0}[image.dtype.type])


def test_explicit_range_is_in_stored_units_and_clipped():
    counts = np.array([[0, 1000], [3000, 16383]], np.uint16)
    image, chosen = load_image(counts, "infrared", input_range=(1000, 3000), return_range=True)
    assert chosen == (1000.0, 3000.0)
    assert image[0].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert load_image(np.array([[0, 51], [102, 255]], np.uint8), "x", input_range=[0, 102])[0, 0, 1].item() == 0.5


@pytest.mark.parametrize("bad", ["percentile", (1, 1), (2, 1), (0, float("nan")), (0,), (0, 1, 2), ("0", "1"), 255])
def test_bad_input_range(bad):
    with pytest.raises(ValueError, match="`input_range` must be 'auto', 'full' or \\(low, high\\)"):
        load_image(np.zeros((2, 2), np.uint8), "x", input_range=bad)


def test_prepare_pair_batch_takes_a_range_per_source():
    counts, visible = _radiometric(14), np.full((20, 20), 255, np.uint8)
    inputs = prepare_pair_batch(counts, visible, input_range=((0, 16383), "auto"))
    assert inputs.infrared.max().item() == 1.0 and inputs.visible.min().item() == 1.0
    both = prepare_pair_batch(counts, visible, input_range=(0, 16383))  # one range for both: 255 of 16383
    assert both.visible.max().item() == pytest.approx(255 / 16383)


def test_load_bad_dtype():
    with pytest.raises(TypeError, match=r"dtype int64\. Use uint8 \(0-255\), uint16 \(0-65535\)"):
        load_image(np.zeros((2, 2), np.int64), "x")
    with pytest.raises(TypeError, match="dtype int32"):
        load_image(torch.zeros(2, 2, dtype=torch.int32), "x")
    with pytest.raises(TypeError, match="dtype object"):
        load_image(np.zeros((2, 2), object), "x")


@pytest.mark.parametrize("value", [np.zeros((0, 0), np.uint8), np.zeros((0, 4, 3), np.uint8), torch.zeros(3, 4, 0)])
def test_load_empty(value):
    with pytest.raises(ValueError, match="is empty"):
        load_image(value, "infrared")


@pytest.mark.parametrize("value", [np.zeros((1, 1), np.uint8), PIL.Image.new("RGB", (1, 1)), torch.zeros(3, 5, 1)])
def test_load_too_small(value):
    with pytest.raises(ValueError, match=r"too small .*at least 2x2"):
        load_image(value, "infrared")


def test_load_batch_dimension_rejected():
    with pytest.raises(ValueError, match=r"batch dimension of 2 .*Pass a list of images"):
        load_image(torch.zeros(2, 3, 4, 4), "visible")
    with pytest.raises(ValueError, match=r"batch dimension of 3 .*Pass a list of images"):
        load_image(np.zeros((3, 4, 4, 3), np.uint8), "visible")


def test_load_16_bit_int_mode_out_of_range():
    with pytest.raises(ValueError, match="0-65535"):
        load_image(PIL.Image.new("I", (2, 2), 70000), "infrared")


# --- YCbCr ---------------------------------------------------------------------------------------


def test_ycbcr_round_trip():
    rgb = torch.rand(2, 3, 8, 9, dtype=torch.float64)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, rtol=0, atol=1e-12)
    rgb32 = rgb.float()
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb32)), rgb32, rtol=0, atol=1e-6)
    ycbcr = torch.rand(3, 4, 4)
    torch.testing.assert_close(rgb_to_ycbcr(ycbcr_to_rgb(ycbcr)), ycbcr, rtol=0, atol=1e-6)


def test_ycbcr_matches_pil():
    array = _rng_uint8(64, 64, 3, seed=1)
    array[0, :4] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]
    rgb = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255
    ours = (rgb_to_ycbcr(rgb)[0].permute(1, 2, 0) * 255).round().numpy()
    theirs = np.asarray(PIL.Image.fromarray(array).convert("YCbCr")).astype(np.float64)
    assert np.abs(ours - theirs).max() <= 1.0  # within 1/255 once rounded to uint8

    ycbcr = _rng_uint8(64, 64, 3, seed=2)
    back = ycbcr_to_rgb(torch.from_numpy(ycbcr).permute(2, 0, 1)[None].float() / 255)
    back = (back[0].clamp(0, 1).permute(1, 2, 0) * 255).round().numpy()
    pil_back = np.asarray(PIL.Image.fromarray(ycbcr, "YCbCr").convert("RGB")).astype(np.float64)
    assert np.abs(back - pil_back).max() <= 2.0  # PIL's fixed-point inverse truncates: up to 2 levels


def test_ycbcr_grey_has_neutral_chroma():
    grey = torch.rand(1, 1, 4, 4).expand(1, 3, 4, 4)
    ycbcr = rgb_to_ycbcr(grey)
    torch.testing.assert_close(ycbcr[:, :1], grey[:, :1])
    torch.testing.assert_close(ycbcr[:, 1:], torch.full_like(ycbcr[:, 1:], 0.5))


def test_ycbcr_rejects_wrong_channels():
    with pytest.raises(ValueError, match="Expected 3 channels"):
        rgb_to_ycbcr(torch.rand(1, 4, 2, 2))


# --- to_luminance --------------------------------------------------------------------------------


def test_to_luminance():
    grey = torch.rand(1, 4, 4)
    y, chroma = to_luminance(grey)
    assert y is grey and chroma is None

    y, chroma = to_luminance(grey.expand(3, 4, 4))
    assert y.shape == (1, 4, 4) and chroma is None
    torch.testing.assert_close(y, grey)

    colour = torch.rand(3, 4, 4)
    y, chroma = to_luminance(colour)
    assert y.shape == (1, 4, 4) and chroma.shape == (2, 4, 4)
    torch.testing.assert_close(torch.cat([y, chroma]), rgb_to_ycbcr(colour))

    with pytest.raises(ValueError, match=r"\(1, H, W\) or \(3, H, W\)"):
        to_luminance(torch.rand(2, 4, 4))


# --- prepare_pair_batch --------------------------------------------------------------------------


def test_prepare_single_pair_colour():
    inputs = prepare_pair_batch(_rng_uint8(6, 8), _rng_uint8(6, 8, 3, seed=2))
    assert isinstance(inputs, FusionInputs)
    assert inputs.infrared.shape == inputs.visible.shape == (1, 1, 6, 8)
    assert inputs.visible_chroma.shape == (1, 2, 6, 8)
    assert inputs.is_colour.tolist() == [True]
    assert inputs.batch_size == 1 and inputs.size == (6, 8)
    for tensor in (inputs.infrared, inputs.visible, inputs.visible_chroma):
        assert tensor.dtype == torch.float32 and 0 <= tensor.min() and tensor.max() <= 1


def test_prepare_grey_pair_has_no_chroma():
    inputs = prepare_pair_batch([_rng_uint8(4, 4)], [np.repeat(_rng_uint8(4, 4, 1), 3, axis=2)])
    assert inputs.visible_chroma is None
    assert inputs.is_colour.tolist() == [False]


def test_prepare_colour_infrared_reduced_to_luminance():
    rgb = torch.rand(3, 4, 4)
    inputs = prepare_pair_batch(rgb, torch.rand(4, 4))
    torch.testing.assert_close(inputs.infrared[0], rgb_to_ycbcr(rgb)[:1])


def test_prepare_mixed_batch():
    grey, colour = _rng_uint8(4, 5), _rng_uint8(4, 5, 3)
    inputs = prepare_pair_batch([grey, grey, grey], [colour, grey, PIL.Image.fromarray(colour)])
    assert inputs.is_colour.tolist() == [True, False, True]
    assert inputs.visible_chroma.shape == (3, 2, 4, 5)
    assert inputs.visible_chroma[1].eq(0.5).all()


def test_prepare_errors():
    image = _rng_uint8(4, 4)
    with pytest.raises(ValueError, match="Got 3 infrared and 2 visible images"):
        prepare_pair_batch([image] * 3, [image] * 2)
    with pytest.raises(ValueError, match="empty list"):
        prepare_pair_batch([], [])
    with pytest.raises(
        ValueError, match=r"Pair 1: the infrared image is 4x4 but the visible image is 4x6.*Register / resize"
    ):
        prepare_pair_batch([image, image], [image, _rng_uint8(4, 6)])
    with pytest.raises(ValueError, match=r"Pair 1 is 5x5 but pair 0 is 4x4.*separate calls"):
        prepare_pair_batch([image, _rng_uint8(5, 5)], [image, _rng_uint8(5, 5)])
    with pytest.raises(ValueError, match=r"visible\[1\] image is too small"):
        prepare_pair_batch([image, image], [image, np.zeros((1, 1), np.uint8)])


# --- resize / output_size_for / pad / crop -------------------------------------------------------


def test_resize():
    x = torch.rand(2, 3, 8, 10)
    up = resize(x, (16, 21))
    assert up.shape == (2, 3, 16, 21) and up.min() >= 0 and up.max() <= 1
    assert resize(x, (4, 5)).shape == (2, 3, 4, 5)
    torch.testing.assert_close(resize(torch.full((1, 1, 8, 8), 0.3), (5, 5)), torch.full((1, 1, 5, 5), 0.3))
    assert resize(x.double(), (9, 9)).dtype == torch.float64
    with pytest.raises(ValueError, match="two ints"):
        resize(x, (0, 4))


def test_output_size_for():
    assert output_size_for((5, 7), scale=1.5) == (8, 10)  # Python round: 7.5 -> 8, 10.5 -> 10
    assert output_size_for((256, 256), scale=4) == (1024, 1024)
    assert output_size_for((5, 7), scale=1) == (5, 7)
    assert output_size_for((5, 7), scale=np.float32(2.0)) == (10, 14)
    assert output_size_for((5, 7), output_size=(5, 9)) == (5, 9)


def test_output_size_for_errors():
    with pytest.raises(ValueError, match="exactly one"):
        output_size_for((5, 7))
    with pytest.raises(ValueError, match="exactly one"):
        output_size_for((5, 7), scale=2, output_size=(10, 14))
    with pytest.raises(ValueError, match=r"`scale` is 0.5, but upscale factors start at 1"):
        output_size_for((5, 7), scale=0.5)
    for bad in (float("nan"), float("inf"), True, "2", [2]):
        with pytest.raises(TypeError, match="finite number"):
            output_size_for((5, 7), scale=bad)
    for bad in ((4, 7), (5, 6.0), (5,), (True, 8), "57"):
        with pytest.raises(ValueError, match=r"output_size .*at least 5x7"):
            output_size_for((5, 7), output_size=bad)


@pytest.mark.parametrize("size", [(2, 2), (5, 7), (16, 16), (17, 33), (3, 40)])
def test_pad_crop_round_trip(size):
    x = torch.rand(2, 3, *size)
    padded, original = pad_to_multiple(x, 16)
    assert original == size
    assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    assert padded.shape[-2] - size[0] < 16 and padded.shape[-1] - size[1] < 16
    torch.testing.assert_close(crop_to(padded, original), x, rtol=0, atol=0)


def test_pad_modes():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded, _ = pad_to_multiple(x, 6)  # height 3 -> 6 (pad 3: replicate), width 4 -> 6 (pad 2: reflect)
    assert padded.shape == (1, 1, 6, 6)
    assert padded[0, 0, 0, 4:].tolist() == [2.0, 1.0]
    assert padded[0, 0, 3:, 0].tolist() == [8.0, 8.0, 8.0]
    with pytest.raises(ValueError, match="positive int"):
        pad_to_multiple(x, 0)
    with pytest.raises(ValueError, match="smaller"):
        crop_to(x, (4, 4))


@pytest.mark.parametrize("size, margin, multiple", [((5, 7), 4, 4), ((24, 32), 16, 16), ((2, 3), 3, 8)])
def test_pad_margin_round_trip(size, margin, multiple):
    x = torch.rand(1, 2, *size)
    padded, original = pad_to_multiple(x, multiple, margin)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - size[0] - 2 * margin < multiple and padded.shape[-1] - size[1] - 2 * margin < multiple
    torch.testing.assert_close(crop_to(padded, original, margin), x, rtol=0, atol=0)


def test_pad_margin_mirrors_the_image_on_every_side():
    x = torch.arange(1.0, 6.0).repeat(5, 1)[None, None]  # columns 1..5
    padded, _ = pad_to_multiple(x, 1, margin=2)
    assert padded[0, 0, 0].tolist() == [3, 2, 1, 2, 3, 4, 5, 4, 3]
    assert padded[0, 0, :, 0].eq(3).all()
    with pytest.raises(ValueError, match="non-negative int"):
        pad_to_multiple(x, 4, margin=-1)
    with pytest.raises(ValueError, match="margin of 2"):
        crop_to(x, (4, 4), margin=2)


# --- postprocess ---------------------------------------------------------------------------------


def test_postprocess_grey():
    y = torch.rand(2, 1, 4, 5)
    images = postprocess(y, None, None, "pil")
    assert [image.mode for image in images] == ["L", "L"] and images[0].size == (5, 4)
    np.testing.assert_array_equal(np.asarray(images[1]), (y[1, 0] * 255).round().to(torch.uint8).numpy())
    assert postprocess(y, None, None, "np").shape == (2, 4, 5, 1)
    assert postprocess(y, None, None, "pt").shape == (2, 1, 4, 5)


def test_postprocess_colour_recovers_rgb():
    rgb = torch.rand(2, 3, 4, 5)
    ycbcr = rgb_to_ycbcr(rgb)
    out = postprocess(ycbcr[:, :1], ycbcr[:, 1:], None, "pt")
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.float32
    torch.testing.assert_close(out, rgb, rtol=0, atol=1e-5)
    array = postprocess(ycbcr[:, :1], ycbcr[:, 1:], None, "np")
    assert isinstance(array, np.ndarray) and array.shape == (2, 4, 5, 3) and array.dtype == np.float32
    assert [image.mode for image in postprocess(ycbcr[:, :1], ycbcr[:, 1:], None, "pil")] == ["RGB", "RGB"]


def test_postprocess_mixed():
    y, chroma = torch.rand(2, 1, 4, 4), torch.rand(2, 2, 4, 4)
    is_colour = torch.tensor([False, True])
    images = postprocess(y, chroma, is_colour, "pil")
    assert [image.mode for image in images] == ["L", "RGB"]
    array = postprocess(y, chroma, is_colour, "np")
    assert array.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(array[0], np.repeat(y[0].permute(1, 2, 0).numpy(), 3, axis=2))
    assert postprocess(y, chroma, torch.tensor([False, False]), "pt").shape == (2, 1, 4, 4)


def test_postprocess_clamps_and_resizes_chroma():
    out = postprocess(torch.full((1, 1, 8, 8), 1.5), torch.full((1, 2, 4, 4), 0.5), None, "pt")
    assert out.shape == (1, 3, 8, 8) and out.max() == 1.0


def test_postprocess_errors():
    y = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"Unknown output_type 'jpg'; valid ones are pil, np, pt"):
        postprocess(y, None, None, "jpg")
    with pytest.raises(ValueError, match="chroma` is None"):
        postprocess(y, None, torch.tensor([True]), "pt")
    with pytest.raises(ValueError, match=r"`chroma` must have shape \(1, 2, H, W\)"):
        postprocess(y, torch.rand(1, 3, 4, 4), None, "pt")
    with pytest.raises(ValueError, match=r"`luminance` must have shape"):
        postprocess(torch.rand(1, 3, 4, 4), None, None, "pt")


# --- real data -----------------------------------------------------------------------------------


def _real_pair(folder: str, infrared: str, visible: str, name: str):
    ir_path, vi_path = DATA_DIR / folder / infrared / name, DATA_DIR / folder / visible / name
    if not (ir_path.is_file() and vi_path.is_file()):
        pytest.skip(f"../shared/data not found: {ir_path} / {vi_path}")
    return ir_path, vi_path


@pytest.mark.parametrize(
    "folder, infrared, visible, name, size, colour",
    [
        ("TNO", "ir", "vi", "01.png", (576, 768), False),  # both grey stored as RGB
        ("RoadScene", "ir", "vi", "FLIR_00211.jpg", (301, 496), True),  # L JPEG + RGB JPEG
        ("Harvard_MRI_PET", "mri", "pet", "11.png", (256, 256), True),  # grey-as-RGB MRI + pseudo-colour PET
    ],
)
def test_real_pairs(folder, infrared, visible, name, size, colour):
    ir_path, vi_path = _real_pair(folder, infrared, visible, name)
    inputs = prepare_pair_batch(ir_path, str(vi_path))
    assert inputs.infrared.shape == inputs.visible.shape == (1, 1, *size)
    assert inputs.is_colour.tolist() == [colour]
    assert (inputs.visible_chroma is not None) == colour
    for tensor in (inputs.infrared, inputs.visible):
        assert tensor.dtype == torch.float32 and 0 <= tensor.min() < tensor.max() <= 1
    raw_ir = np.asarray(PIL.Image.open(ir_path))
    np.testing.assert_allclose(inputs.infrared[0, 0].numpy(), raw_ir.reshape(*size, -1)[..., 0] / 255.0, atol=1e-6)
    if colour:
        rebuilt = postprocess(inputs.visible, inputs.visible_chroma, inputs.is_colour, "pil")[0]
        original = np.asarray(PIL.Image.open(vi_path).convert("RGB")).astype(int)
        assert np.abs(np.asarray(rebuilt).astype(int) - original).max() <= 1
