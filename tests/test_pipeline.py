"""Tests of FSDiffPipeline, in the manner of diffusers' PipelineTesterMixin."""

import json
import subprocess
import sys
from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image

from fsdiff_diffusers import (
    ClarityMambaEncoder,
    FSDiffPipeline,
    FSDiffPipelineOutput,
    FSDiffUNet2DModel,
    default_scheduler,
)
from fsdiff_diffusers.image_processor import prepare_pair_batch, resize
from fsdiff_diffusers.pipelines.pipeline_fsdiff import FALLBACK_NUM_INFERENCE_STEPS

from .conftest import tiny_encoder, tiny_pipeline, tiny_unet


def run(pipe: FSDiffPipeline, infrared, visible, seed: int = 0, **kwargs):
    kwargs = {"scale": 2, "num_inference_steps": 2, "output_type": "np", **kwargs}
    return pipe(infrared, visible, generator=torch.Generator().manual_seed(seed), **kwargs).images


def test_output_types_and_colour(pipe, pair):
    infrared, visible = pair
    as_np = run(pipe, infrared, visible)
    assert as_np.shape == (1, 24, 32, 3) and as_np.dtype == np.float32
    assert 0 <= as_np.min() and as_np.max() <= 1
    as_pt = run(pipe, infrared, visible, output_type="pt")
    assert as_pt.shape == (1, 3, 24, 32)
    np.testing.assert_allclose(as_pt.permute(0, 2, 3, 1).numpy(), as_np, atol=1e-6)
    as_pil = run(pipe, infrared, visible, output_type="pil")
    assert isinstance(as_pil[0], Image.Image) and as_pil[0].mode == "RGB" and as_pil[0].size == (32, 24)
    grey = run(pipe, infrared, visible.mean(-1).astype(np.uint8), output_type="pil")
    assert grey[0].mode == "L"


def zero_latents(pipeline, step, timestep, tensors):
    """A step-end callback that replaces the sample by zeros: the fused luminance becomes mid grey (0.5)."""
    return {"latents": torch.zeros_like(tensors["latents"])}


def test_colour_comes_from_the_visible_chroma(pipe, pair):
    """With the luminance forced to mid grey, the output's chroma is the visible image's chroma."""
    infrared, _ = pair
    visible = np.empty((12, 16, 3), dtype=np.uint8)
    visible[...] = (150, 120, 100)
    out = run(pipe, infrared, visible, output_type="pil", callback_on_step_end=zero_latents)[0].convert("YCbCr")
    expected = np.asarray(Image.fromarray(visible).convert("YCbCr"))[0, 0]
    np.testing.assert_allclose(np.asarray(out)[..., 0], 128, atol=1)
    np.testing.assert_allclose(np.asarray(out)[..., 1:], np.broadcast_to(expected[1:], (24, 32, 2)), atol=2)


def test_scale_and_output_size(pipe, pair):
    infrared, visible = pair
    assert run(pipe, infrared, visible, scale=2.5).shape == (1, 30, 40, 3)
    assert run(pipe, infrared, visible, scale=1).shape == (1, 12, 16, 3)
    assert run(pipe, infrared, visible, scale=None, output_size=(20, 50)).shape == (1, 20, 50, 3)
    default = pipe(infrared, visible, num_inference_steps=1, output_type="np").images
    assert default.shape == (1, 48, 64, 3)  # x4 when neither is given


def test_deterministic_with_generator(pipe, pair):
    first, second = run(pipe, *pair), run(pipe, *pair)
    np.testing.assert_array_equal(first, second)
    assert np.abs(run(pipe, *pair, seed=1) - first).max() > 1e-4


def test_batch_equals_single_runs(pipe, pair):
    infrared, visible = pair
    others = (np.flip(infrared, 0).copy(), np.flip(visible, 1).copy())
    generators = [torch.Generator().manual_seed(s) for s in (3, 4)]
    batched = pipe(
        [infrared, others[0]],
        [visible, others[1]],
        scale=2,
        num_inference_steps=2,
        output_type="np",
        generator=generators,
    ).images
    singles = [run(pipe, infrared, visible, seed=3)[0], run(pipe, *others, seed=4)[0]]
    # Equal up to float rounding: oneDNN picks other kernels for other batch sizes.
    np.testing.assert_allclose(batched, np.stack(singles), atol=2e-4)


def test_dict_and_tuple_outputs(pipe, pair):
    as_dict = pipe(*pair, scale=2, num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0))
    assert isinstance(as_dict, ImagePipelineOutput)
    as_tuple = pipe(
        *pair,
        scale=2,
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
        return_dict=False,
    )
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
    np.testing.assert_array_equal(as_tuple[0], as_dict.images)
    assert as_dict.clarity is None


def test_clarity_maps_follow_the_output_type_and_the_encoder(pipe, pair):
    """`return_clarity=True` adds each source's clarity at the output size, as the encoder predicted it."""
    kwargs = {"scale": 2, "num_inference_steps": 1, "return_clarity": True}
    as_np = pipe(*pair, output_type="np", generator=torch.Generator().manual_seed(0), **kwargs)
    assert isinstance(as_np, FSDiffPipelineOutput) and as_np.clarity.shape == (1, 24, 32, 2)
    assert as_np.clarity.dtype == np.float32 and 0 < as_np.clarity.min() and as_np.clarity.max() < 1
    images, clarity = pipe(
        *pair, output_type="pt", return_dict=False, generator=torch.Generator().manual_seed(0), **kwargs
    )
    assert clarity.shape == (1, 2, 24, 32)
    np.testing.assert_array_equal(clarity.permute(0, 2, 3, 1).numpy(), as_np.clarity)
    np.testing.assert_array_equal(images.permute(0, 2, 3, 1).numpy(), as_np.images)
    # The encoder's own clarity of the canvas, resized to it and cropped to the output.
    inputs = prepare_pair_batch(*pair)
    upsampled = resize(torch.cat([inputs.infrared, inputs.visible], dim=1), (24, 32))
    canvas = F.pad(upsampled, (4, 4, 4, 4), mode="reflect") * 2 - 1
    expected = F.interpolate(pipe.clarity_encoder(canvas).clarity, size=(32, 40), mode="bilinear")[..., 4:28, 4:36]
    torch.testing.assert_close(clarity, expected)


def test_latents_and_callback(pipe, pair):
    assert pipe.canvas_size(24, 32) == (32, 40)  # a margin of 4 (the U-Net's stride) on every side
    latents = torch.randn(1, 1, 32, 40, generator=torch.Generator().manual_seed(0))
    seen = []

    def callback(pipeline, step, timestep, tensors):
        seen.append((step, tensors["latents"].shape))
        return zero_latents(pipeline, step, timestep, tensors)

    grey_visible = pair[1].mean(-1).astype(np.uint8)
    out = run(pipe, pair[0], grey_visible, latents=latents, callback_on_step_end=callback)
    assert [s for s, _ in seen] == [0, 1] and seen[0][1] == (1, 1, 32, 40)
    np.testing.assert_allclose(out, 0.5, atol=1e-6)  # the callback's zeros became the result
    # Given latents replace the generator's noise.
    np.testing.assert_array_equal(
        run(pipe, pair[0], grey_visible, latents=latents, seed=5), run(pipe, pair[0], grey_visible, latents=latents)
    )
    with pytest.raises(ValueError, match=r"latents` must have shape \(1, 1, 32, 40\)"):
        run(pipe, *pair, latents=torch.randn(1, 1, 24, 32))
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        run(pipe, *pair, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"])


@pytest.mark.parametrize("scheduler_name", DDPMScheduler._compatibles)
def test_every_compatible_scheduler(pipe, pair, scheduler_name):
    scheduler_class = getattr(diffusers, scheduler_name)
    # DPMSolverSDE draws its Brownian noise from its own seed, not from the generator.
    extra = {"noise_sampler_seed": 0} if scheduler_name == "DPMSolverSDEScheduler" else {}
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config, **extra)
    out = run(pipe, *pair, num_inference_steps=4)  # PNDM's Runge-Kutta warm-up needs at least 4 steps
    assert out.shape == (1, 24, 32, 3) and np.isfinite(out).all()
    np.testing.assert_array_equal(run(pipe, *pair, num_inference_steps=4), out)


def test_prediction_type_mismatch_is_reported(pipe, pair):
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, prediction_type="v_prediction")
    with pytest.raises(ValueError, match="prediction_type='v_prediction'.*from_config"):
        run(pipe, *pair)


def test_save_load_round_trip(tmp_path, pipe, pair):
    expected = run(pipe, *pair)
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    index = json.loads((tmp_path / "model_index.json").read_text())  # the remote-code layout: see test_remote_code.py
    assert index["unet"] == ["unet_fsdiff", "FSDiffUNet2DModel"] and (tmp_path / "unet" / "unet_fsdiff.py").is_file()
    reloaded = FSDiffPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert isinstance(reloaded.unet, FSDiffUNet2DModel) and isinstance(reloaded.clarity_encoder, ClarityMambaEncoder)
    assert reloaded.semantic_encoder is None
    for (name, a), (_, b) in zip(pipe.unet.state_dict().items(), reloaded.unet.state_dict().items()):
        assert torch.equal(a, b), name
    # Same weights, same noise; outputs equal up to float rounding (memory-mapped weights can select other
    # oneDNN kernels), as in diffusers' own save/load tests.
    np.testing.assert_allclose(run(reloaded, *pair), expected, atol=1e-4)


def test_float16_variant(tmp_path, pipe, pair):
    pipe.to(torch.float16).save_pretrained(tmp_path, variant="fp16")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    reloaded = FSDiffPipeline.from_pretrained(tmp_path, variant="fp16", dtype=torch.float16)
    reloaded.set_progress_bar_config(disable=True)
    assert reloaded.unet.dtype == reloaded.clarity_encoder.dtype == torch.float16
    for (name, a), (_, b) in zip(pipe.unet.state_dict().items(), reloaded.unet.state_dict().items()):
        assert torch.equal(a, b), name
    out = run(reloaded, *pair)
    assert out.shape == (1, 24, 32, 3) and np.isfinite(out).all()


def test_semantic_encoder_path(tmp_path, pair):
    """An optional CLIP vision model adds one token per modality (tiny random CLIP: no download possible here)."""
    transformers = pytest.importorskip(
        "transformers", reason="the optional CLIP semantic encoder needs transformers: pip install '.[clip]'"
    )
    torch.manual_seed(0)
    clip = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            projection_dim=12,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
    ).eval()
    processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pipe = tiny_pipeline(clarity_encoder=tiny_encoder(semantic_embed_dim=12))
    pipe.semantic_encoder, pipe.feature_extractor = None, None
    pipe.register_modules(semantic_encoder=clip, feature_extractor=processor)
    embeds = pipe.encode_semantics(torch.rand(2, 2, 12, 16))
    assert embeds.shape == (2, 2, 12)
    out = run(pipe, *pair)
    assert out.shape == (1, 24, 32, 3)
    pipe.save_pretrained(tmp_path)
    reloaded = FSDiffPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert isinstance(reloaded.semantic_encoder, transformers.CLIPVisionModelWithProjection)
    np.testing.assert_allclose(run(reloaded, *pair), out, atol=1e-4)


# Runs with transformers hidden (`sys.modules` holds None for it, so any import of it fails), as installed without the
# `clip` extra.
WITHOUT_TRANSFORMERS = r"""
import sys
sys.modules["transformers"] = None
sys.path.insert(0, sys.argv[1])
import numpy as np
from fsdiff_diffusers import FSDiffPipeline
from fsdiff_diffusers.cli import main
from tests.conftest import tiny_pipeline

pipe = tiny_pipeline()
rng = np.random.default_rng(0)
pair = rng.integers(0, 256, (12, 16), dtype=np.uint8), rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
assert pipe(*pair, scale=2, num_inference_steps=2, output_type="np").images.shape == (1, 24, 32, 3)
pipe.save_pretrained(sys.argv[2])
FSDiffPipeline.from_pretrained(sys.argv[2])
imported = [name for name, module in sys.modules.items() if name.startswith("transformers") and module is not None]
assert not imported, imported
"""


def test_pipeline_imports_runs_saves_and_loads_without_transformers(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TRANSFORMERS, str(repo), str(tmp_path / "saved")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def test_real_pair_with_default_architecture(data_dir):
    """A real TNO pair through a randomly initialised default-size pipeline, at a small size."""
    infrared = Image.open(data_dir / "TNO" / "ir" / "01.png")
    visible = Image.open(data_dir / "TNO" / "vi" / "01.png")
    infrared, visible = (image.resize((48, 36), Image.BICUBIC) for image in (infrared, visible))
    torch.manual_seed(0)
    pipe = FSDiffPipeline(
        unet=FSDiffUNet2DModel(), clarity_encoder=ClarityMambaEncoder(), scheduler=default_scheduler()
    )
    pipe.set_progress_bar_config(disable=True)
    out = pipe(infrared, visible, scale=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert out.size == (96, 72) and out.mode == "L"  # TNO stores grey as RGB: a grey visible gives a grey result
    pixels = np.asarray(out)
    assert pixels.std() > 0


@pytest.mark.parametrize(
    "infrared, visible, kwargs, error, match",
    [
        (np.zeros((12, 16)), np.zeros((12, 18)), {}, ValueError, "same size"),
        (np.zeros((12, 16)), np.zeros((12, 16)), {"scale": 0.5}, ValueError, "scale"),
        (np.full((12, 16), np.nan), np.zeros((12, 16)), {}, ValueError, "NaN"),
        (np.zeros((0, 16)), np.zeros((0, 16)), {}, ValueError, "empty"),
        (np.zeros((1, 1)), np.zeros((1, 1)), {}, ValueError, "2x2"),
        (np.zeros((12, 16, 5)), np.zeros((12, 16)), {}, ValueError, "channels"),
        ([np.zeros((12, 16))] * 2, [np.zeros((12, 16))], {}, ValueError, "2 infrared and 1 visible"),
        (
            np.zeros((12, 16)),
            np.zeros((12, 16)),
            {"generator": [torch.Generator(), torch.Generator()]},
            ValueError,
            "2 generators for a batch of 1",
        ),
        (np.zeros((12, 16)), np.zeros((12, 16)), {"num_inference_steps": 0}, ValueError, "num_inference_steps"),
        (np.zeros((12, 16)), np.zeros((12, 16)), {"output_type": "latent"}, ValueError, "output_type"),
    ],
)
def test_bad_inputs_raise_clear_errors(pipe, infrared, visible, kwargs, error, match):
    kwargs = {"scale": 2, "num_inference_steps": 1, **kwargs}
    with pytest.raises(error, match=match):
        pipe(infrared, visible, **kwargs)


def test_missing_weights_folder_is_reported(tmp_path):
    with pytest.raises((OSError, ValueError), match="model_index.json|folder"):
        FSDiffPipeline.from_pretrained(tmp_path)


def test_encoder_runs_once_per_call(pipe, pair):
    """The clarity encoder sees only the conditions: one run per call, however many denoising steps."""
    calls = {"clarity_encoder": 0, "unet": 0}
    for name in calls:
        getattr(pipe, name).register_forward_hook(lambda *args, name=name: calls.__setitem__(name, calls[name] + 1))
    run(pipe, *pair, num_inference_steps=5)
    assert calls == {"clarity_encoder": 1, "unet": 5}


@pytest.mark.parametrize("tile_size", [None, 32])
def test_models_get_channels_last_inputs_and_the_layout_does_not_change_the_image(pipe, pair, tile_size, monkeypatch):
    """Both models see channels-last (NHWC) inputs, untiled and tiled (tiles are views of a channels-last canvas:
    channels innermost, then columns); the same call with contiguous (NCHW) inputs gives the same image (the layout
    is a speed choice only)."""
    layouts = []
    for name in ("clarity_encoder", "unet"):
        getattr(pipe, name).register_forward_pre_hook(
            lambda module, args, name=name: layouts.append((name, args[0].stride(1) == 1 < args[0].stride(3)))
        )
    nhwc = run(pipe, *pair, scale=4, tile_size=tile_size, tile_overlap=8 if tile_size else None)
    assert {name for name, _ in layouts} == {"clarity_encoder", "unet"} and all(last for _, last in layouts)
    for module in ("pipeline_fsdiff", "tiling"):
        monkeypatch.setattr(f"fsdiff_diffusers.pipelines.{module}.nhwc", torch.Tensor.contiguous)
    nchw = run(pipe, *pair, scale=4, tile_size=tile_size, tile_overlap=8 if tile_size else None)
    np.testing.assert_allclose(nhwc, nchw, atol=1e-3, rtol=0)  # float rounding: a 250th of a grey level


@pytest.mark.parametrize("scheduler_name", ["DPMSolverMultistepScheduler", "DDIMScheduler", "UniPCMultistepScheduler"])
def test_residual_unet_adds_its_sample_to_the_base_fusion(pair, scheduler_name):
    """A residual U-Net whose output layer is zero predicts a zero residual, so the pipeline returns exactly the base
    fusion (here the maximum) of the upsampled sources' luminance, with any scheduler and any number of steps."""
    pipe = zero_residual_pipeline()
    pipe.scheduler = getattr(diffusers, scheduler_name).from_config(pipe.scheduler.config)
    infrared, visible = pair[0], pair[1][..., 0]  # grey: no chroma to put back
    fused = run(pipe, infrared, visible, scale=2, num_inference_steps=3, output_type="pt")
    inputs = prepare_pair_batch(infrared, visible)
    upsampled = resize(torch.cat([inputs.infrared, inputs.visible], dim=1), tuple(fused.shape[-2:]))
    torch.testing.assert_close(fused, upsampled.amax(dim=1, keepdim=True), atol=1e-5, rtol=0)


def test_from_models_pairs_the_unet_with_a_matching_default_scheduler():
    unet, encoder = tiny_unet(prediction_type="sample"), tiny_encoder()
    pipe = FSDiffPipeline.from_models(unet, encoder)
    assert pipe.unet is unet and pipe.clarity_encoder is encoder and pipe.semantic_encoder is None
    assert pipe.scheduler.config == default_scheduler("sample").config


class ZeroPaddedBlurUNet(FSDiffUNet2DModel):
    """A stand-in denoiser whose prediction (of the sample) is a zero-padded 5x5 box blur of its first condition: like
    any zero-padded convolution, it darkens the 2 pixels along the edges of its input."""

    def forward(self, sample, timestep, encoder_hidden_states, encoder_features=None, return_dict=True):
        return (F.avg_pool2d(sample[:, 1:2], 5, stride=1, padding=2),)


def test_zero_padding_of_the_unet_stays_outside_the_output():
    """On a constant pair, the output of a U-Net with zero-padded convolutions is constant up to its edges: the U-Net
    samples a canvas with a mirrored margin around the output (faint lines along the edges before)."""
    unet = ZeroPaddedBlurUNet.from_config(tiny_unet(prediction_type="sample").config)
    pipe = tiny_pipeline(unet=unet, scheduler=default_scheduler("sample"))
    constant = np.full((6, 8), 0.6, dtype=np.float32)
    fused = run(pipe, constant, constant, scale=4, output_type="pt")
    assert fused.shape == (1, 1, 24, 32)
    torch.testing.assert_close(fused, torch.full_like(fused, 0.6), atol=1e-6, rtol=0)


def zero_residual_pipeline() -> FSDiffPipeline:
    """A residual U-Net whose output layer is zero: the pipeline returns the max fusion of the upsampled sources."""
    unet = tiny_unet(diffusion_target="residual", residual_base="max", prediction_type="sample")
    torch.nn.init.zeros_(unet.conv_out.weight)
    torch.nn.init.zeros_(unet.conv_out.bias)
    return tiny_pipeline(unet=unet, scheduler=default_scheduler("sample"))


def test_input_range_of_14_bit_infrared_counts():
    """A hot target of 14-bit counts stored in uint16 is white under "auto", a quarter grey under "full"."""
    counts = np.full((12, 16), 500, np.uint16)
    counts[4:8, 4:8] = 2**14 - 1
    visible = np.zeros((12, 16), np.uint8)
    pipe = zero_residual_pipeline()
    auto = run(pipe, counts, visible, scale=1, output_type="pt")
    assert auto[0, 0, 5, 5].item() == pytest.approx(1.0, abs=1e-6) and auto[0, 0, 0, 0].item() == 0.0
    full = run(pipe, counts, visible, scale=1, output_type="pt", input_range="full")
    assert full[0, 0, 5, 5].item() == pytest.approx((2**14 - 1) / 65535, abs=1e-6)
    explicit = run(pipe, counts, visible, scale=1, output_type="pt", input_range=((0, 2**14 - 1), "auto"))
    assert explicit[0, 0, 5, 5].item() == pytest.approx(1.0, abs=1e-6)


def test_default_steps_are_registered_saved_and_used(tmp_path):
    """`default_num_inference_steps` lives in model_index.json; calls without `num_inference_steps` take it."""
    pipe = tiny_pipeline(default_num_inference_steps=3)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["default_num_inference_steps"] == 3
    loaded = FSDiffPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.default_num_inference_steps == 3
    steps = []
    record = lambda pipe, step, timestep, kwargs: steps.append(step) or {}  # noqa: E731
    ir, vi = torch.rand(1, 8, 8), torch.rand(1, 8, 8)
    loaded(ir, vi, scale=2, callback_on_step_end=record, output_type="np")
    assert steps == [0, 1, 2]
    index = json.loads((tmp_path / "model_index.json").read_text())
    del index["default_num_inference_steps"]  # a folder saved before the key existed
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    assert FSDiffPipeline.from_pretrained(tmp_path).default_num_inference_steps == FALLBACK_NUM_INFERENCE_STEPS
