"""Failures of the Python API speak plainly: a clear error naming the problem and the fix, never a silently wrong image
or a stack trace from deep inside Diffusers (issue 14)."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UniPCMultistepScheduler

from fsdiff_diffusers import SHIPPED_MODELS, FSDiffPipeline

pytestmark = pytest.mark.usefixtures("one_thread")


def fuse(pipe: FSDiffPipeline, pair, **kwargs):
    kwargs = {"scale": 2, "num_inference_steps": 1, "output_type": "np", **kwargs}
    return pipe(*pair, **kwargs).images


@pytest.mark.parametrize("scheduler_class", [None, UniPCMultistepScheduler])
@pytest.mark.parametrize("steps", [1000, 1500])
def test_multistep_solvers_refuse_steps_with_repeated_timesteps(pipe, pair, scheduler_class, steps):
    """At 1000+ of 1000 training timesteps, DPM-Solver++ and UniPC repeat timesteps and would sample NaN."""
    if scheduler_class is not None:
        pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match=f"cannot take {steps} steps.*at most 999 steps"):
        fuse(pipe, pair, num_inference_steps=steps)


def test_the_largest_usable_step_count_passes_the_check(pipe):
    pipe.scheduler.set_timesteps(999)
    pipe.check_timesteps(999)
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # repeats no timestep at 1000 steps
    pipe.scheduler.set_timesteps(1000)
    pipe.check_timesteps(1000)


@pytest.mark.parametrize("scheduler_class", [DDPMScheduler, DDIMScheduler])
def test_ddpm_and_ddim_refuse_more_steps_than_timesteps(pipe, pair, scheduler_class):
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="cannot be larger than"):
        fuse(pipe, pair, num_inference_steps=1001)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_latents_are_refused(pipe, pair, bad):
    latents = torch.randn(1, 1, 24, 32)
    latents[0, 0, 3, 5] = bad
    with pytest.raises(ValueError, match="`latents` contains NaN or infinite values"):
        fuse(pipe, pair, latents=latents)


@pytest.mark.parametrize("generator", [0, [0], np.random.default_rng(0), [torch.Generator(), 1]])
def test_a_seed_instead_of_a_generator_is_refused(pipe, pair, generator):
    with pytest.raises(TypeError, match=r"torch.Generator\(\).manual_seed\(0\)"):
        fuse(pipe, pair, generator=generator)


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_from_pretrained_takes_a_shipped_models_name(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = FSDiffPipeline.from_pretrained(name)
    assert pipe.name_or_path == SHIPPED_MODELS[name]


def test_a_folder_named_like_a_shipped_model_wins(tmp_path, monkeypatch, pipe):
    pipe.save_pretrained(tmp_path / "fsdiff-medical")
    monkeypatch.chdir(tmp_path)
    assert list(FSDiffPipeline.from_pretrained("fsdiff-medical").unet.config.block_out_channels) == [16, 32]


def test_a_shipped_model_missing_from_the_installation_is_reported(tmp_path, monkeypatch):
    monkeypatch.setitem(SHIPPED_MODELS, "fsdiff-medical", str(tmp_path / "gone"))
    with pytest.raises(OSError, match="'fsdiff-medical' shipped with fsdiff-diffusers is missing.*reinstall"):
        FSDiffPipeline.from_pretrained("fsdiff-medical")
