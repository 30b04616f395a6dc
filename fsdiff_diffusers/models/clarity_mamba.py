"""ClarityMambaEncoder: the condition encoder of FS-Diff (clarity-weighted, bidirectional-Mamba features)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from .bimamba import BidirectionalMambaBlock
from .strict_config import StrictConfigMixin


@dataclass
class ClarityMambaEncoderOutput(BaseOutput):
    r"""
    Args:
        context (`torch.Tensor` of shape `(batch, num_tokens, context_dim)`):
            Tokens for the U-Net's cross-attention: `context_grid**2` pooled tokens of the fused feature map, one
            global token per modality, and one per modality from a semantic encoder when its embeddings were given.
        features (`tuple` of `torch.Tensor`):
            Fused feature maps; `features[i]` has shape `(batch, block_out_channels[i], H / 2**(i+1), W / 2**(i+1))`.
        clarity (`torch.Tensor` of shape `(batch, num_modalities, H / 2**(clarity_level+1), W / 2**(clarity_level+1))`):
            Predicted clarity of each modality in (0, 1): 1 is sharp and clean, 0 heavily blurred, noisy or low
            resolution.
        clarity_weights (`torch.Tensor` of the same shape as `clarity`):
            Soft per-pixel weights of the modalities (a softmax over the modality axis) used to fuse their features.
    """

    # Defaults so that tools which rebuild outputs field by field (Accelerate's mixed-precision wrapper) can.
    context: torch.Tensor = None
    features: tuple[torch.Tensor, ...] = None
    clarity: torch.Tensor = None
    clarity_weights: torch.Tensor = None


class GroupedResidualBlock(nn.Module):
    """Two 3x3 convolutions with a residual, grouped so that each modality keeps its own weights and statistics."""

    def __init__(self, channels: int, groups: int, norm_groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, groups=groups)
        self.norm2 = nn.GroupNorm(norm_groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=groups)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.conv1(F.silu(self.norm1(hidden_states)))
        hidden_states = self.conv2(F.silu(self.norm2(hidden_states)))
        return residual + hidden_states


class ClarityMambaEncoder(StrictConfigMixin, ModelMixin, ConfigMixin):
    r"""
    Encodes the upsampled source images of a fusion problem into cross-attention tokens and multi-scale feature maps.
    It sees only the conditions, never the noisy sample, so a pipeline runs it once per image, not once per step.

    Per-modality stems (grouped convolutions: one set of weights per modality) go down to 1/2, 1/4, ... of the
    input. A clarity head predicts, per modality and per region, how clear that modality is; a softmax over the
    modalities turns the predictions into soft weights that blend the modalities' features at every level (the same
    rule for every sample, at training and at inference). Bidirectional Mamba blocks then give the deepest fused map
    global context in time linear in its number of pixels.

    Args:
        num_modalities (`int`, defaults to 2): Number of source images (channels of the input).
        block_out_channels (`tuple[int]`): Channels per modality and of the fused map at each level; level `i` has
            stride `2**(i+1)`.
        clarity_level (`int`, defaults to 2): Level whose stem features the clarity head reads.
        num_mamba_layers (`int`, defaults to 2): Bidirectional Mamba blocks on the deepest fused map.
        mamba_state_size (`int`, defaults to 16): SSM state size of those blocks.
        context_dim (`int`, defaults to 128): Width of the context tokens.
        context_grid (`int`, defaults to 4): The deepest fused map is pooled to `context_grid x context_grid` tokens.
        semantic_embed_dim (`int`, *optional*): Width of the per-modality embeddings of an optional semantic encoder
            (for example a CLIP vision model's `image_embeds`); `None` when the encoder is used without one.
        norm_num_groups (`int`, defaults to 8): GroupNorm groups per modality.
    """

    @register_to_config
    def __init__(
        self,
        num_modalities: int = 2,
        block_out_channels: tuple[int, ...] = (32, 64, 96, 128),
        clarity_level: int = 2,
        num_mamba_layers: int = 2,
        mamba_state_size: int = 16,
        context_dim: int = 128,
        context_grid: int = 4,
        semantic_embed_dim: int | None = None,
        norm_num_groups: int = 8,
    ):
        super().__init__()
        if not 0 <= clarity_level < len(block_out_channels):
            raise ValueError(f"`clarity_level` must index `block_out_channels`, got {clarity_level}.")
        m = num_modalities
        self.downsamplers = nn.ModuleList()
        self.stems = nn.ModuleList()
        self.fusers = nn.ModuleList()
        in_channels = m
        for channels in block_out_channels:
            self.downsamplers.append(nn.Conv2d(in_channels, m * channels, 3, stride=2, padding=1, groups=m))
            self.stems.append(GroupedResidualBlock(m * channels, groups=m, norm_groups=m * norm_num_groups))
            self.fusers.append(nn.Conv2d(m * channels, channels, 1))
            in_channels = m * channels

        clarity_channels = block_out_channels[clarity_level]
        self.clarity_head = nn.Sequential(
            nn.GroupNorm(m * norm_num_groups, m * clarity_channels),
            nn.SiLU(),
            nn.Conv2d(m * clarity_channels, m * clarity_channels, 3, padding=1, groups=m),
            nn.SiLU(),
            nn.Conv2d(m * clarity_channels, m, 1, groups=m),
        )

        deep_channels = block_out_channels[-1]
        self.mamba_blocks = nn.ModuleList(
            BidirectionalMambaBlock(deep_channels, state_size=mamba_state_size) for _ in range(num_mamba_layers)
        )
        self.grid_proj = nn.Linear(deep_channels, context_dim)
        self.modality_proj = nn.Linear(deep_channels, context_dim)
        self.modality_embedding = nn.Parameter(torch.zeros(m, context_dim))
        self.semantic_proj = nn.Linear(semantic_embed_dim, context_dim) if semantic_embed_dim else None
        self.context_norm = nn.LayerNorm(context_dim)

    @property
    def num_context_tokens(self) -> int:
        """Number of context tokens produced without a semantic encoder."""
        return self.config.context_grid**2 + self.config.num_modalities

    def forward(
        self,
        conditions: torch.Tensor,
        semantic_embeds: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> ClarityMambaEncoderOutput | tuple:
        r"""
        Args:
            conditions (`torch.Tensor` of shape `(batch, num_modalities, H, W)`):
                The upsampled source images in [-1, 1]; H and W divisible by `2 ** len(block_out_channels)`.
            semantic_embeds (`torch.Tensor` of shape `(batch, num_modalities, semantic_embed_dim)`, *optional*):
                Per-modality embeddings of a semantic encoder, appended to the context as tokens.
            return_dict (`bool`, defaults to `True`): Return a [`ClarityMambaEncoderOutput`] instead of a tuple.
        """
        m = self.config.num_modalities
        if conditions.ndim != 4 or conditions.shape[1] != m:
            raise ValueError(
                f"`conditions` must have shape (batch, {m}, height, width), got {tuple(conditions.shape)}."
            )
        if (semantic_embeds is None) != (self.semantic_proj is None):
            raise ValueError(
                "`semantic_embeds` must be given exactly when the encoder was configured with `semantic_embed_dim` "
                f"(configured: {self.config.semantic_embed_dim}, given: {semantic_embeds is not None})."
            )

        per_modality = []
        hidden_states = conditions
        for downsample, stem in zip(self.downsamplers, self.stems):
            hidden_states = stem(downsample(hidden_states))
            per_modality.append(hidden_states)

        logits = self.clarity_head(per_modality[self.config.clarity_level])  # (B, m, h, w)
        clarity_weights = logits.softmax(dim=1)

        features = []
        for states, fuse in zip(per_modality, self.fusers):
            weights = F.interpolate(clarity_weights, size=states.shape[-2:], mode="bilinear", align_corners=False)
            batch, _, height, width = states.shape
            weighted = states.view(batch, m, -1, height, width) * (m * weights).unsqueeze(2)
            features.append(fuse(weighted.flatten(1, 2)))
        for block in self.mamba_blocks:
            features[-1] = block(features[-1])

        deepest = features[-1]
        grid = F.adaptive_avg_pool2d(deepest, self.config.context_grid).flatten(2).transpose(1, 2)
        modality_means = per_modality[-1].view(deepest.shape[0], m, deepest.shape[1], -1).mean(-1)
        tokens = [self.grid_proj(grid), self.modality_proj(modality_means) + self.modality_embedding]
        if semantic_embeds is not None:
            tokens.append(self.semantic_proj(semantic_embeds.to(deepest.dtype)) + self.modality_embedding)
        context = self.context_norm(torch.cat(tokens, dim=1))

        output = ClarityMambaEncoderOutput(
            context=context, features=tuple(features), clarity=logits.sigmoid(), clarity_weights=clarity_weights
        )
        return output if return_dict else output.to_tuple()
