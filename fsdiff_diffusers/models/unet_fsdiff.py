"""FSDiffUNet2DModel: the conditional denoiser of FS-Diff."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.utils import BaseOutput
from torch import nn

from ..fusion import FUSION_METHODS, fuse
from .bimamba import BidirectionalMambaBlock
from .strict_config import StrictConfigMixin

DIFFUSION_TARGETS = ("fused_image", "residual")


@dataclass
class FSDiffUNet2DOutput(BaseOutput):
    r"""
    Args:
        sample (`torch.Tensor` of shape `(batch, out_channels, height, width)`):
            The model's prediction (noise, sample or velocity, as `prediction_type` says).
    """

    sample: torch.Tensor


class FSDiffBlock(nn.Module):
    r"""
    A FiLM-conditioned residual block (diffusers' `ResnetBlock2D` with scale/shift time embedding), optionally
    followed by a bidirectional Mamba block (global context) and by cross-attention to the condition tokens.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        norm_num_groups: int,
        use_mamba: bool,
        cross_attention_dim: int | None,
        attention_head_dim: int,
        mamba_state_size: int,
    ):
        super().__init__()
        self.resnet = ResnetBlock2D(
            in_channels=in_channels,
            out_channels=out_channels,
            temb_channels=temb_channels,
            groups=norm_num_groups,
            time_embedding_norm="scale_shift",
        )
        self.mamba = BidirectionalMambaBlock(out_channels, state_size=mamba_state_size) if use_mamba else None
        self.attention = (
            Attention(
                query_dim=out_channels,
                cross_attention_dim=cross_attention_dim,
                heads=out_channels // attention_head_dim,
                dim_head=attention_head_dim,
                norm_num_groups=norm_num_groups,
                residual_connection=True,
                bias=True,
            )
            if cross_attention_dim
            else None
        )

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        hidden_states = self.resnet(hidden_states, temb)
        if self.mamba is not None:
            hidden_states = self.mamba(hidden_states)
        if self.attention is not None:
            hidden_states = self.attention(hidden_states, encoder_hidden_states=context)
        return hidden_states


class FSDiffUNet2DModel(StrictConfigMixin, ModelMixin, ConfigMixin):
    r"""
    The denoiser of FS-Diff: a U-Net over the noisy fused image `x_t` concatenated with the upsampled source images,
    conditioned on the (float) timestep through FiLM, on the [`ClarityMambaEncoder`] context tokens through
    cross-attention and on its multi-scale feature maps, which are added at the matching resolutions.

    A space-to-depth stem (pixel unshuffle by 2) runs the first level at half the output resolution, and the output
    is pixel-shuffled back, which keeps the cost per output megapixel low. There is no self-attention: global
    context comes from bidirectional Mamba blocks at the low resolutions (linear in the number of pixels).

    Level `i` runs at stride `2**(i+1)`; inputs must have height and width divisible by [`downsample_factor`].

    Args:
        in_channels (`int`, defaults to 3): `x_t` plus the conditions (1 + 2 for two grey sources).
        out_channels (`int`, defaults to 1): Channels of the prediction.
        block_out_channels (`tuple[int]`): Channels of each level.
        layers_per_block (`int`, defaults to 2): Blocks per level on the way down (one more on the way up).
        cross_attention_levels (`tuple[bool]`): Levels with cross-attention to the context tokens.
        mamba_levels (`tuple[bool]`): Levels with bidirectional Mamba blocks (the middle block always has one).
        cross_attention_dim (`int`, defaults to 128): Width of the context tokens.
        attention_head_dim (`int`, defaults to 32): Channels per attention head.
        encoder_feature_channels (`tuple[int]`, *optional*): Channels of the encoder feature maps, one per level;
            `None` for a U-Net that takes no feature maps.
        mamba_state_size (`int`, defaults to 16): SSM state size of the Mamba blocks.
        norm_num_groups (`int`, defaults to 16): GroupNorm groups.
        prediction_type (`str`, defaults to `"epsilon"`): What the model predicts; the pipeline checks that the
            scheduler agrees.
        diffusion_target (`str`, defaults to `"fused_image"`): What was diffused during training, recorded so that a
            pipeline never samples a model the wrong way: `"fused_image"` (the fused image itself, from pure noise, as
            in the paper) or `"residual"` (the difference between the fused image and a classical fusion of the
            upsampled sources, as SRDiff does for super-resolution; see [`residual_base`]).
        residual_base (`str`, defaults to `"max"`): The classical fusion rule (a name of
            `fsdiff_diffusers.fusion.FUSION_METHODS`) of the base a `"residual"` model adds its sample to.
        residual_scale (`float`, defaults to 0.5): A `"residual"` model's sample is the residual (in the [-1, 1]
            image range) divided by this number, so that it fills the sampler's [-1, 1] range.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        block_out_channels: tuple[int, ...] = (48, 96, 144, 192),
        layers_per_block: int = 1,
        cross_attention_levels: tuple[bool, ...] = (False, False, True, True),
        mamba_levels: tuple[bool, ...] = (False, False, False, False),
        cross_attention_dim: int = 128,
        attention_head_dim: int = 32,
        encoder_feature_channels: tuple[int, ...] | None = (32, 64, 96, 128),
        mamba_state_size: int = 16,
        norm_num_groups: int = 16,
        prediction_type: str = "epsilon",
        diffusion_target: str = "fused_image",
        residual_base: str = "max",
        residual_scale: float = 0.5,
    ):
        super().__init__()
        levels = len(block_out_channels)
        for name, value in (("cross_attention_levels", cross_attention_levels), ("mamba_levels", mamba_levels)):
            if len(value) != levels:
                raise ValueError(f"`{name}` needs one entry per level ({levels}), got {len(value)}.")
        if encoder_feature_channels is not None and len(encoder_feature_channels) != levels:
            raise ValueError(
                f"`encoder_feature_channels` needs one entry per level ({levels}), got {len(encoder_feature_channels)}."
            )
        if prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(
                f"`prediction_type` must be 'epsilon', 'sample' or 'v_prediction', got {prediction_type!r}."
            )
        if diffusion_target not in DIFFUSION_TARGETS:
            raise ValueError(f"`diffusion_target` must be one of {DIFFUSION_TARGETS}, got {diffusion_target!r}.")
        if residual_base not in FUSION_METHODS:
            raise ValueError(f"`residual_base` must be one of {FUSION_METHODS}, got {residual_base!r}.")
        if not residual_scale > 0:
            raise ValueError(f"`residual_scale` must be positive, got {residual_scale!r}.")
        self.gradient_checkpointing = False

        base = block_out_channels[0]
        temb_channels = 4 * base
        self.time_proj = Timesteps(base, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(base, temb_channels)
        self.conv_in = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * in_channels, base, 3, padding=1))

        def block(cin: int, cout: int, level: int, mamba: bool | None = None) -> FSDiffBlock:
            return FSDiffBlock(
                cin,
                cout,
                temb_channels,
                norm_num_groups,
                use_mamba=mamba_levels[level] if mamba is None else mamba,
                cross_attention_dim=cross_attention_dim if cross_attention_levels[level] else None,
                attention_head_dim=attention_head_dim,
                mamba_state_size=mamba_state_size,
            )

        self.feature_projections = (
            nn.ModuleList(nn.Conv2d(f, c, 1) for f, c in zip(encoder_feature_channels, block_out_channels))
            if encoder_feature_channels is not None
            else None
        )
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        channels = base
        for level, cout in enumerate(block_out_channels):
            self.down_blocks.append(
                nn.ModuleList(block(channels if i == 0 else cout, cout, level) for i in range(layers_per_block))
            )
            channels = cout
            if level < levels - 1:
                self.downsamplers.append(nn.Conv2d(cout, block_out_channels[level + 1], 3, stride=2, padding=1))
                channels = block_out_channels[level + 1]

        deepest = block_out_channels[-1]
        self.mid_blocks = nn.ModuleList(
            [block(deepest, deepest, levels - 1, mamba=True), block(deepest, deepest, levels - 1)]
        )

        self.up_blocks = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level in reversed(range(levels)):
            cout = block_out_channels[level]
            if level < levels - 1:
                self.upsamplers.append(nn.Conv2d(block_out_channels[level + 1], cout, 3, padding=1))
            self.up_blocks.append(
                nn.ModuleList(block(2 * cout if i == 0 else cout, cout, level) for i in range(layers_per_block + 1))
            )

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, base)
        self.conv_out = nn.Conv2d(base, 4 * out_channels, 3, padding=1)

    @property
    def downsample_factor(self) -> int:
        """Height and width of every input must be divisible by this number."""
        return 2 ** len(self.config.block_out_channels)

    def residual_base(self, conditions: torch.Tensor) -> torch.Tensor | None:
        r"""
        The base a `"residual"` model's sample is added to: the `residual_base` fusion of the upsampled sources.

        Args:
            conditions (`torch.Tensor` of shape `(batch, 2, height, width)`): The upsampled sources in [-1, 1], as
                concatenated to the U-Net's input.

        Returns:
            `torch.Tensor` of shape `(batch, 1, height, width)` in [-1, 1], or `None` for a `"fused_image"` model.
        """
        if self.config.diffusion_target != "residual":
            return None
        sources = ((conditions.float() + 1) / 2).clamp(0, 1)
        return (fuse(sources[:, :1], sources[:, 1:], self.config.residual_base) * 2 - 1).to(conditions.dtype)

    def to_sample(self, image: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """A fused image `(batch, 1, H, W)` in [-1, 1] -> what this model diffuses (itself, or the scaled residual)."""
        return image if base is None else (image - base) / self.config.residual_scale

    def to_image(self, sample: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """Inverse of [`to_sample`]: a denoised sample `(batch, 1, H, W)` -> the fused image in [-1, 1]."""
        return sample if base is None else (base + self.config.residual_scale * sample).clamp(-1, 1)

    def _run_block(self, block: FSDiffBlock, hidden_states: torch.Tensor, temb: torch.Tensor, context: torch.Tensor):
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, hidden_states, temb, context)
        return block(hidden_states, temb, context)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        encoder_features: tuple[torch.Tensor, ...] | None = None,
        return_dict: bool = True,
    ) -> FSDiffUNet2DOutput | tuple:
        r"""
        Args:
            sample (`torch.Tensor` of shape `(batch, in_channels, height, width)`):
                The noisy sample concatenated with the conditions along the channels.
            timestep (`torch.Tensor` of shape `()` or `(batch,)`, or a number): Integer or float timesteps.
            encoder_hidden_states (`torch.Tensor` of shape `(batch, num_tokens, cross_attention_dim)`):
                Context tokens (the `context` of a [`ClarityMambaEncoderOutput`]).
            encoder_features (`tuple` of `torch.Tensor`, *optional*):
                One map per level, `encoder_features[i]` of shape
                `(batch, encoder_feature_channels[i], height / 2**(i+1), width / 2**(i+1))`.
            return_dict (`bool`, defaults to `True`): Return an [`FSDiffUNet2DOutput`] instead of a tuple.
        """
        batch, _, height, width = sample.shape
        factor = self.downsample_factor
        if height % factor or width % factor:
            raise ValueError(f"Height and width must be divisible by {factor}, got {height}x{width}: pad the input.")
        if (encoder_features is None) != (self.feature_projections is None):
            raise ValueError(
                "`encoder_features` must be given exactly when the U-Net was configured with "
                f"`encoder_feature_channels` (configured: {self.config.encoder_feature_channels})."
            )

        timesteps = torch.as_tensor(timestep, device=sample.device)
        timesteps = timesteps.reshape(-1).expand(batch) if timesteps.numel() == 1 else timesteps.reshape(batch)
        temb = self.time_embedding(self.time_proj(timesteps).to(sample.dtype))
        context = encoder_hidden_states.to(sample.dtype)

        hidden_states = self.conv_in(sample)
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            if self.feature_projections is not None:
                projected = self.feature_projections[level](encoder_features[level].to(sample.dtype))
                hidden_states = hidden_states + projected
            for block in blocks:
                hidden_states = self._run_block(block, hidden_states, temb, context)
            skips.append(hidden_states)
            if level < len(self.downsamplers):
                hidden_states = self.downsamplers[level](hidden_states)

        for block in self.mid_blocks:
            hidden_states = self._run_block(block, hidden_states, temb, context)

        for index, blocks in enumerate(self.up_blocks):
            if index > 0:
                hidden_states = F.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
                hidden_states = self.upsamplers[index - 1](hidden_states)
            hidden_states = torch.cat([hidden_states, skips.pop()], dim=1)
            for block in blocks:
                hidden_states = self._run_block(block, hidden_states, temb, context)

        hidden_states = self.conv_out(F.silu(self.conv_norm_out(hidden_states)))
        sample = F.pixel_shuffle(hidden_states, 2)
        return FSDiffUNet2DOutput(sample=sample) if return_dict else (sample,)
