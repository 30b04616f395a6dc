"""Diffusers pipeline conventions of FSDiffPipeline: the Examples docstring, `num_timesteps` and `interrupt`, custom
`timesteps` / `sigmas` where the scheduler takes them."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

from fsdiff_diffusers import FSDiffPipeline


def run(pipe: FSDiffPipeline, pair, **kwargs) -> np.ndarray:
    kwargs = {"scale": 2, "output_type": "np", **kwargs}
    return pipe(*pair, generator=torch.Generator().manual_seed(0), **kwargs).images


def test_call_docstring_has_the_examples():
    doc = FSDiffPipeline.__call__.__doc__
    assert "Examples:" in doc and "```py" in doc
    assert '>>> pipe = FSDiffPipeline.from_pretrained("fsdiff-ir-vis")' in doc
    assert 'DiffusionPipeline.from_pretrained("path/to/saved-pipeline", trust_remote_code=True)' in doc
    assert doc.index("Examples:") < doc.index("Returns:")


def test_num_timesteps_and_interrupt(pipe, pair):
    steps = []

    def stop_after_two(pipeline, step, timestep, callback_kwargs):
        steps.append(step)
        if step == 1:
            pipeline._interrupt = True
        return callback_kwargs

    interrupted = run(pipe, pair, num_inference_steps=4, callback_on_step_end=stop_after_two)
    assert steps == [0, 1]  # the remaining steps are skipped
    assert pipe.num_timesteps == 4 and pipe.interrupt
    assert interrupted.shape == (1, 24, 32, 3) and np.isfinite(interrupted).all()

    full = run(pipe, pair, num_inference_steps=3)  # the next call starts uninterrupted
    assert pipe.num_timesteps == 3 and not pipe.interrupt
    assert not np.array_equal(full, interrupted)


def test_custom_timesteps_equal_the_schedule_they_copy(pipe, pair):
    pipe.scheduler.set_timesteps(3)
    timesteps = pipe.scheduler.timesteps.tolist()
    expected = run(pipe, pair, num_inference_steps=3)
    np.testing.assert_array_equal(run(pipe, pair, timesteps=timesteps), expected)
    assert pipe.num_timesteps == 3
    np.testing.assert_array_equal(run(pipe, pair, timesteps=torch.tensor(timesteps)), expected)

    run(pipe, pair, timesteps=[999, 700, 400, 100])
    assert pipe.num_timesteps == 4 and pipe.scheduler.timesteps.tolist() == [999, 700, 400, 100]


def test_custom_sigmas(pipe, pair):
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.scheduler.set_timesteps(3)
    sigmas = pipe.scheduler.sigmas.tolist()  # Euler's take the final noise level (0) too: 3 steps, 4 sigmas
    expected = run(pipe, pair, num_inference_steps=3)
    out = run(pipe, pair, sigmas=sigmas)
    assert pipe.num_timesteps == 3
    np.testing.assert_allclose(pipe.scheduler.sigmas.numpy(), sigmas, rtol=1e-6)
    # The same noise levels; the timesteps the U-Net sees are interpolated from them in float32, hence not bitwise.
    np.testing.assert_allclose(out, expected, atol=5e-3)


@pytest.mark.parametrize(
    "scheduler_class, kwargs, match",
    [
        (DDIMScheduler, {"timesteps": [999, 500]}, "DDIMScheduler does not take custom `timesteps`"),
        (None, {"sigmas": [10.0, 1.0]}, "DPMSolverMultistepScheduler does not take custom `sigmas`"),
        (EulerDiscreteScheduler, {"timesteps": [999, 500], "sigmas": [10.0, 1.0]}, "either `timesteps` or `sigmas`"),
        (None, {"timesteps": [999, 500, 500]}, "repeated timestep.*strictly decreasing"),
        (None, {"timesteps": []}, "non-empty sequence"),
        (DDPMScheduler, {"timesteps": [500, 999]}, "descending order"),  # Diffusers' own check
    ],
)
def test_custom_schedules_the_scheduler_cannot_take_are_refused(pipe, pair, scheduler_class, kwargs, match):
    if scheduler_class is not None:
        pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match=match):
        run(pipe, pair, **kwargs)
