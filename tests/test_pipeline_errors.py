"""Failures of the Python API speak plainly: a clear error naming the problem and the fix, never a silently wrong image
or a stack trace from deep inside Diffusers (issue 14)."""

import json
import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UniPCMultistepScheduler
from diffusers.training_utils import EMAModel

from fsdiff_diffusers import SHIPPED_MODELS, ClarityMambaEncoder, FSDiffPipeline, FSDiffUNet2DModel
from fsdiff_diffusers.pipelines import checks

from .conftest import tiny_encoder, tiny_unet

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
    latents = torch.randn(1, 1, *pipe.canvas_size(24, 32))
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


@pytest.mark.parametrize(
    "component, typo, meant",
    [("unet", "diffusion_targt", "diffusion_target"), ("clarity_encoder", "num_mamba_layer", "num_mamba_layers")],
)
def test_a_typo_in_a_model_config_is_refused_at_load_time(tmp_path, pipe, component, typo, meant):
    pipe.save_pretrained(tmp_path)
    config_path = tmp_path / component / "config.json"
    config = json.loads(config_path.read_text())
    config[typo] = config.pop(meant)
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"unknown keys: '{typo}' \\(did you mean '{meant}'\\?\\)"):
        FSDiffPipeline.from_pretrained(tmp_path)


@pytest.mark.filterwarnings("ignore:It is deprecated to pass a pretrained model name:FutureWarning")  # EMAModel's own
@pytest.mark.parametrize("model_cls", [FSDiffUNet2DModel, ClarityMambaEncoder])
def test_ema_copies_and_their_export_still_load(tmp_path, model_cls):
    """EMAModel writes its own state (decay, optimization_step, ...) into the config.json of the copies it saves."""
    model = tiny_unet() if model_cls is FSDiffUNet2DModel else tiny_encoder()
    ema = EMAModel(model.parameters(), model_cls=model_cls, model_config=model.config, use_ema_warmup=True)
    ema.step(model.parameters())
    ema.save_pretrained(tmp_path)
    assert {"decay", "optimization_step"} <= set(json.loads((tmp_path / "config.json").read_text()))
    reloaded = EMAModel.from_pretrained(tmp_path, model_cls=model_cls)
    assert reloaded.optimization_step == 1
    init_config = model_cls.extract_init_dict(model_cls.load_config(tmp_path))[0]  # as export_checkpoint.py does
    assert model_cls.from_config(init_config).config.block_out_channels == list(model.config.block_out_channels)


def test_a_pipeline_call_warns_from_nowhere_in_our_code(pipe, pair, tmp_path):
    """Every input kind and output type; the only DeprecationWarning of a call is diffusers' own (pyproject.toml)."""
    infrared, visible = pair
    PIL.Image.fromarray(infrared).save(tmp_path / "ir.png")
    PIL.Image.fromarray(visible).save(tmp_path / "vi.png")
    inputs = [
        (infrared, visible),
        (PIL.Image.fromarray(infrared), PIL.Image.fromarray(visible)),
        (torch.from_numpy(infrared), torch.from_numpy(visible).permute(2, 0, 1)),
        (tmp_path / "ir.png", tmp_path / "vi.png"),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for sources in inputs:
            for output_type in ("pil", "np", "pt"):
                fuse(pipe, sources, output_type=output_type)
    ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if "fsdiff_diffusers" in w.filename]
    assert not ours
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]  # not even diffusers' (silenced)


def test_memory_estimate_grows_with_the_canvas_the_batch_and_the_dtype(pipe):
    small = pipe.estimate_memory((12, 16), (24, 32))
    assert small == pipe.canvas_pixel_bytes * 32 * 40 + pipe.source_pixel_bytes * 12 * 16  # canvas of 24x32: 32x40
    assert pipe.estimate_memory((12, 16), (24, 32), batch_size=3) == 3 * small
    assert pipe.estimate_memory((12, 16), (240, 320)) > 60 * small
    pipe.unet.to(torch.float16)
    assert pipe.estimate_memory((12, 16), (24, 32)) < small


def test_an_output_too_large_for_the_memory_is_refused_before_the_models_run(pipe, pair, monkeypatch):
    monkeypatch.setattr(checks, "available_memory", lambda device: 2**20)
    calls = []
    pipe.clarity_encoder.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=r"needs about 0\.0 GiB of memory, but cpu has 0\.0 GiB .*smaller `scale`"):
        fuse(pipe, pair, scale=8)
    assert not calls
    monkeypatch.setattr(checks, "available_memory", lambda device: None)  # unknown: no refusal
    assert fuse(pipe, pair, scale=8).shape == (1, 96, 128, 3)


def test_available_memory_of_the_cpu():
    available = checks.available_memory(torch.device("cpu"))
    assert available is None or available > 0
    assert checks.available_memory(torch.device("meta")) is None


def test_upscaling_beyond_x8_warns(pipe, pair):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        fuse(pipe, pair, scale=9)
    assert [str(w.message) for w in caught] == [
        "Upscaling x9 (12x16 -> 108x144): the models were trained for x2 to x8, so detail beyond that is bicubic "
        "guesswork."
    ]
    assert caught[0].filename == __file__  # points at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fuse(pipe, pair, scale=8)
