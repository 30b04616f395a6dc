"""Tests of the synthetic example pair and of `fsdiff example`, which writes it."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from fsdiff_diffusers.cli import main
from fsdiff_diffusers.example_pair import HIDDEN_WARM_OBJECTS, example_pair


def as_arrays(pair) -> tuple:
    """`(infrared, visible luminance)` as float `(H, W)` arrays in 0..255."""
    infrared, visible = pair
    return np.asarray(infrared, dtype=np.float64), np.asarray(visible.convert("L"), dtype=np.float64)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    rows, columns = np.gradient(image)
    return np.hypot(rows, columns)


@pytest.mark.parametrize("width, height", [(160, 120), (64, 48), (200, 90)])
def test_sizes_and_modes(width, height):
    infrared, visible = example_pair(width, height)
    assert (infrared.mode, infrared.size) == ("L", (width, height))
    assert (visible.mode, visible.size) == ("RGB", (width, height))
    colour = np.asarray(visible, dtype=np.int16)
    assert np.abs(colour[..., 0] - colour[..., 2]).mean() > 20  # really in colour, not grey in RGB


def test_deterministic_and_seed_changes_only_textures():
    first, again = example_pair(), example_pair()
    for image, same in zip(first, again):
        np.testing.assert_array_equal(np.asarray(image), np.asarray(same))

    other = example_pair(seed=1)
    for image, changed in zip(as_arrays(first), as_arrays(other)):
        assert not np.array_equal(image, changed)
        assert np.corrcoef(image.ravel(), changed.ravel())[0, 1] > 0.9  # same scene, other noise and texture


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("name", sorted(HIDDEN_WARM_OBJECTS))
def test_infrared_shows_people_the_visible_view_hides(name, seed):
    infrared, luminance = as_arrays(example_pair(seed=seed))
    height, width = infrared.shape
    left, top, right, bottom = HIDDEN_WARM_OBJECTS[name]
    box = (slice(round(top * height), round(bottom * height)), slice(round(left * width), round(right * width)))
    warm = infrared[box] > 180  # the person's pixels, found in the infrared view
    assert 0.3 < warm.mean() < 0.7  # a person-sized part of its box
    assert infrared[box][warm].mean() - infrared[box][~warm].mean() > 80  # hot against its background
    assert np.percentile(infrared, 99) <= infrared[box].max()  # among the hottest things in the scene
    # In the visible view the same pixels look like their surroundings (smoke / shadow hide the person).
    assert abs(luminance[box][warm].mean() - luminance[box][~warm].mean()) < 8
    assert luminance[box][warm].std() < 2 * luminance[box][~warm].std() + 1


def test_views_are_registered():
    """Edges of the two views line up: the gradient magnitudes correlate best without any shift."""
    infrared, luminance = (gradient_magnitude(image) for image in as_arrays(example_pair()))
    inner = (slice(4, -4), slice(4, -4))

    def correlation(shift: tuple) -> float:
        shifted = np.roll(luminance, shift, axis=(0, 1))
        return np.corrcoef(infrared[inner].ravel(), shifted[inner].ravel())[0, 1]

    shifts = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if (dy, dx) != (0, 0)]
    assert correlation((0, 0)) > max(correlation(shift) for shift in shifts) + 0.02


def test_too_small_is_refused():
    with pytest.raises(ValueError, match="at least 32x24"):
        example_pair(16, 16)


def test_fsdiff_example_writes_the_pair_and_says_it_is_synthetic(tmp_path: Path, capsys):
    out = tmp_path / "demo"
    assert main(["example", "-o", str(out), "--size", "64x48", "--seed", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "synthetic example scene" in stdout and "not real data" in stdout
    assert f"fsdiff fuse --infrared {out / 'infrared.png'}" in stdout
    assert sorted(path.name for path in out.iterdir()) == ["infrared.png", "visible.png"]
    expected = example_pair(64, 48, seed=2)
    for name, image in zip(("infrared", "visible"), expected):
        with PIL.Image.open(out / f"{name}.png") as written:
            assert written.mode == image.mode and "not real data" in written.info["Description"]
            np.testing.assert_array_equal(np.asarray(written), np.asarray(image))

    with pytest.raises(SystemExit) as exit_info:
        main(["example", "-o", str(out), "--size", "20x10"])
    assert exit_info.value.code == 2 and "too small" in capsys.readouterr().err
