"""Tests of FSDiffUNet2DModel, ClarityMambaEncoder and the Mamba block, in the manner of diffusers' ModelTesterMixin."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fsdiff_diffusers import ClarityMambaEncoder, FSDiffUNet2DModel
from fsdiff_diffusers.models.bimamba import BidirectionalMambaBlock

from .conftest import tiny_encoder, tiny_unet

SIZE = (32, 48)


def unet_inputs(batch: int = 2, seed: int = 0) -> dict:
    """Inputs of the tiny U-Net and the tiny encoder's outputs for them."""
    generator = torch.Generator().manual_seed(seed)
    conditions = torch.rand(batch, 2, *SIZE, generator=generator) * 2 - 1
    torch.manual_seed(seed)
    with torch.no_grad():
        encoded = tiny_encoder()(conditions)
    return dict(
        sample=torch.cat([torch.randn(batch, 1, *SIZE, generator=generator), conditions], dim=1),
        timestep=torch.tensor([10.0, 733.25])[:batch],
        encoder_hidden_states=encoded.context,
        encoder_features=encoded.features,
    )


@torch.no_grad()
def test_encoder_outputs():
    encoder = tiny_encoder().eval()
    conditions = torch.rand(2, 2, *SIZE) * 2 - 1
    out = encoder(conditions)
    assert out.context.shape == (2, encoder.num_context_tokens, 32)
    assert [f.shape for f in out.features] == [(2, 8, 16, 24), (2, 16, 8, 12)]
    assert out.clarity.shape == out.clarity_weights.shape == (2, 2, 8, 12)
    assert ((out.clarity > 0) & (out.clarity < 1)).all()
    torch.testing.assert_close(out.clarity_weights.sum(1), torch.ones(2, 8, 12))
    as_tuple = encoder(conditions, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.context)


@torch.no_grad()
def test_encoder_decides_per_sample():
    """Each sample's clarity weights and features depend on that sample alone (no batch-element-0 decision)."""
    encoder = tiny_encoder().eval()
    conditions = torch.rand(3, 2, *SIZE) * 2 - 1
    batched = encoder(conditions)
    for i in range(3):
        single = encoder(conditions[i : i + 1])
        torch.testing.assert_close(single.clarity_weights, batched.clarity_weights[i : i + 1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(single.context, batched.context[i : i + 1], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_encoder_semantic_tokens():
    encoder = tiny_encoder(semantic_embed_dim=12).eval()
    conditions = torch.rand(2, 2, *SIZE) * 2 - 1
    out = encoder(conditions, semantic_embeds=torch.randn(2, 2, 12))
    assert out.context.shape == (2, encoder.num_context_tokens + 2, 32)
    with pytest.raises(ValueError, match="semantic_embed_dim"):
        encoder(conditions)
    with pytest.raises(ValueError, match="semantic_embed_dim"):
        tiny_encoder()(conditions, semantic_embeds=torch.randn(2, 2, 12))


def test_encoder_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\(batch, 2, height, width\)"):
        tiny_encoder()(torch.rand(1, 3, *SIZE))


@torch.no_grad()
def test_unet_output_shape_and_float_timesteps():
    unet = tiny_unet().eval()
    inputs = unet_inputs()
    out = unet(**inputs).sample
    assert out.shape == (2, 1, *SIZE)
    assert torch.isfinite(out).all()
    # A scalar float timestep broadcasts over the batch, and the timestep changes the prediction.
    scalar = unet(**{**inputs, "timestep": 10.0}).sample
    torch.testing.assert_close(scalar[0], out[0])
    assert not torch.allclose(scalar[1], out[1])
    torch.testing.assert_close(unet(**inputs, return_dict=False)[0], out)


def test_unet_rejects_bad_inputs():
    unet = tiny_unet()
    inputs = unet_inputs()
    with pytest.raises(ValueError, match="divisible by 4"):
        unet(**{**inputs, "sample": inputs["sample"][..., :30]})
    with pytest.raises(ValueError, match="encoder_features"):
        unet(**{**inputs, "encoder_features": None})
    with pytest.raises(ValueError, match="one entry per level"):
        FSDiffUNet2DModel(block_out_channels=(16, 32), cross_attention_levels=(True,))
    with pytest.raises(ValueError, match="prediction_type"):
        tiny_unet(prediction_type="noise")
    with pytest.raises(ValueError, match="diffusion_target"):
        tiny_unet(diffusion_target="noise")
    with pytest.raises(ValueError, match="residual_base"):
        tiny_unet(diffusion_target="residual", residual_base="median")
    with pytest.raises(ValueError, match="residual_scale"):
        tiny_unet(diffusion_target="residual", residual_scale=0)


def test_residual_target_maps_between_fused_images_and_samples():
    """A "residual" U-Net diffuses (image - base) / residual_scale, the base being a classical fusion of the
    conditions; a "fused_image" U-Net diffuses the image itself."""
    conditions = torch.rand(2, 2, *SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    image = torch.rand(2, 1, *SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    plain = tiny_unet()
    assert plain.residual_base(conditions) is None
    assert plain.to_sample(image, None) is image and plain.to_image(image, None) is image

    unet = tiny_unet(diffusion_target="residual", residual_base="max", residual_scale=0.25)
    base = unet.residual_base(conditions)
    torch.testing.assert_close(base, conditions.amax(dim=1, keepdim=True))
    sample = unet.to_sample(image, base)
    torch.testing.assert_close(sample, (image - base) * 4)
    torch.testing.assert_close(unet.to_image(sample, base), image)
    assert unet.to_image(torch.full_like(sample, 100.0), base).max() == 1  # clamped to the image range
    mean = tiny_unet(diffusion_target="residual", residual_base="mean").residual_base(conditions)
    torch.testing.assert_close(mean, conditions.mean(dim=1, keepdim=True))


@torch.no_grad()
@pytest.mark.parametrize("factory", [tiny_unet, tiny_encoder])
def test_save_load_round_trip(tmp_path, factory):
    torch.manual_seed(0)
    model = factory(norm_num_groups=4).eval()
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()
    assert reloaded.config.norm_num_groups == 4  # @register_to_config keeps non-default arguments
    if isinstance(model, FSDiffUNet2DModel):
        inputs = unet_inputs()
        torch.testing.assert_close(reloaded(**inputs).sample, model(**inputs).sample, rtol=0, atol=0)
    else:
        conditions = torch.rand(1, 2, *SIZE)
        torch.testing.assert_close(reloaded(conditions).context, model(conditions).context, rtol=0, atol=0)


@torch.no_grad()
def test_float16_variant_round_trip(tmp_path):
    torch.manual_seed(0)
    model = tiny_unet()
    model.to(torch.float16).save_pretrained(tmp_path, variant="fp16")
    assert (tmp_path / "diffusion_pytorch_model.fp16.safetensors").is_file()
    reloaded = FSDiffUNet2DModel.from_pretrained(tmp_path, variant="fp16", dtype=torch.float16)
    assert reloaded.dtype == torch.float16
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_gradient_checkpointing_matches():
    torch.manual_seed(0)
    reference = tiny_unet()
    checkpointed = tiny_unet()
    checkpointed.load_state_dict(reference.state_dict())
    checkpointed.enable_gradient_checkpointing()
    assert checkpointed.gradient_checkpointing and not reference.gradient_checkpointing
    inputs = unet_inputs()
    losses = []
    for model in (reference, checkpointed):
        loss = model(**inputs).sample.square().mean()
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1])
    for (name, a), (_, b) in zip(reference.named_parameters(), checkpointed.named_parameters()):
        assert a.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)


@torch.no_grad()
def test_bidirectional_mamba_block_sees_both_directions():
    """Changing the first token changes the last output and vice versa: context flows both ways."""
    torch.manual_seed(0)
    block = BidirectionalMambaBlock(8, state_size=4).eval()
    x = torch.randn(1, 8, 4, 5)
    base = block(x)
    for source, target in (((0, 0), (3, 4)), ((3, 4), (0, 0))):
        changed = x.clone()
        changed[..., source[0], source[1]] += torch.randn(8)  # not a constant shift: LayerNorm would remove it
        delta = (block(changed) - base)[..., target[0], target[1]].abs().max()
        assert delta > 1e-6


def test_default_architecture_cost():
    """Defaults: at most 500 GFLOP per output megapixel per U-Net evaluation (the issue's budget)."""
    unet, encoder = FSDiffUNet2DModel().eval(), ClarityMambaEncoder().eval()
    assert unet.config.encoder_feature_channels == encoder.config.block_out_channels
    height, width = 64, 96
    conditions = torch.zeros(1, 2, height, width)
    with torch.no_grad():
        encoded = encoder(conditions)
        with FlopCounterMode(display=False) as counter:
            unet(torch.zeros(1, 3, height, width), 500, encoded.context, encoded.features)
    gflop_per_megapixel = counter.get_total_flops() / 1e9 / (height * width / 1e6)
    assert 100 < gflop_per_megapixel <= 500
