"""HR -> LR degradations and the clarity labels derived from their strengths."""

import pytest
import torch

from fsdiff_diffusers.degradations import (
    DegradationLimits,
    add_gaussian_noise,
    bicubic_downscale,
    clarity_label,
    degrade,
    gaussian_blur,
    sample_degradation,
)
from fsdiff_diffusers.image_processor import resize


@pytest.fixture
def hr() -> torch.Tensor:
    return torch.rand(2, 1, 32, 24, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("scale, size", [(2, (16, 12)), (4, (8, 6)), (3, (11, 8)), (2.5, (13, 10))])
def test_degrade_shapes(hr, scale, size):
    lr = degrade(hr, scale, blur_sigma=1.0, noise_std=0.02, generator=torch.Generator().manual_seed(0))
    assert lr.shape == (2, 1, *size)
    assert lr.min() >= 0 and lr.max() <= 1


def test_zero_strength_is_pure_bicubic_downscale(hr):
    expected = torch.nn.functional.interpolate(hr, size=(8, 6), mode="bicubic", antialias=True).clamp(0, 1)
    torch.testing.assert_close(degrade(hr, 4), expected)
    torch.testing.assert_close(bicubic_downscale(hr, 4), resize(hr, (8, 6)))


def test_blur_keeps_mean_and_smooths(hr):
    blurred = gaussian_blur(hr, 1.5)
    assert blurred.shape == hr.shape
    assert blurred.diff(dim=-1).abs().mean() < 0.5 * hr.diff(dim=-1).abs().mean()
    torch.testing.assert_close(gaussian_blur(torch.full_like(hr, 0.3), 2.0), torch.full_like(hr, 0.3))
    assert gaussian_blur(hr, 0.0) is hr


def test_noise_std_and_no_op(hr):
    flat = torch.full((1, 1, 128, 128), 0.5)
    noisy = add_gaussian_noise(flat, 0.05, torch.Generator().manual_seed(0))
    assert abs((noisy - flat).std().item() - 0.05) < 0.005
    assert add_gaussian_noise(hr, 0.0) is hr


def test_determinism_with_generator(hr):
    def run(seed):
        return degrade(hr, 4, blur_sigma=1.0, noise_std=0.05, generator=torch.Generator().manual_seed(seed))

    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert not torch.equal(run(3), run(4))


def test_bad_scale_is_rejected(hr):
    with pytest.raises(ValueError, match="scale"):
        degrade(hr, 0.5)


def test_label_is_one_for_clean_and_monotone_in_each_strength():
    limits = DegradationLimits()
    assert clarity_label(1, 0, 0, limits) == 1.0
    assert clarity_label(limits.max_scale, limits.max_blur_sigma, limits.max_noise_std, limits) == 0.0
    scales = [clarity_label(s, 0.5, 0.01, limits) for s in (1, 2, 4, 8, 16)]
    blurs = [clarity_label(4, b, 0.01, limits) for b in (0, 0.5, 1, 2, 3)]
    noises = [clarity_label(4, 0.5, n, limits) for n in (0, 0.01, 0.03, 0.05, 0.1)]
    for labels in (scales, blurs, noises):
        assert all(0 <= value <= 1 for value in labels)
        assert all(a >= b for a, b in zip(labels, labels[1:]))
        assert labels[0] > labels[-1]


def test_sample_degradation_within_limits_and_deterministic():
    limits = DegradationLimits(max_blur_sigma=1.5, max_noise_std=0.04, clean_probability=0.3)
    generator = torch.Generator().manual_seed(0)
    strengths = [sample_degradation(generator, limits) for _ in range(200)]
    assert all(0 <= s.blur_sigma <= 1.5 and 0 <= s.noise_std <= 0.04 for s in strengths)
    clean = sum(s.blur_sigma == 0 and s.noise_std == 0 for s in strengths)
    assert 30 < clean < 90
    again = [sample_degradation(torch.Generator().manual_seed(0), limits)]
    assert again[0] == strengths[0]
