"""Bidirectional Mamba block over the pixels of a feature map (global context in linear time)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .selective_scan import bidirectional_selective_scan


class BidirectionalMambaBlock(nn.Module):
    r"""
    A pre-norm residual Mamba block whose selective scan runs over the flattened (row-major) pixels of a feature
    map twice: forward and backward, with separate parameters per direction, and the two outputs summed. Every pixel
    thus sees every other pixel at a cost linear in their number (unlike self-attention).

    Both directions are computed in one call: the projections are grouped 1x1 convolutions with two groups, and
    the scan is one call of [`bidirectional_selective_scan`].

    Args:
        channels (`int`): Channels of the feature map.
        state_size (`int`, defaults to 16): SSM state size N.
        expand (`int`, defaults to 1): Inner channels = `expand * channels`.
        conv_kernel (`int`, defaults to 4): Kernel of the (per-direction causal) depthwise token convolution.
        dt_rank (`int`, *optional*): Rank of the step-size projection; `ceil(channels / 16)` when `None`.
        dt_min, dt_max (`float`): Range of the initial step sizes.
    """

    def __init__(
        self,
        channels: int,
        state_size: int = 16,
        expand: int = 1,
        conv_kernel: int = 4,
        dt_rank: int | None = None,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ):
        super().__init__()
        inner = expand * channels
        self.inner_channels = inner
        self.state_size = state_size
        self.dt_rank = dt_rank or math.ceil(channels / 16)
        self.conv_kernel = conv_kernel

        self.norm = nn.LayerNorm(channels)
        self.in_proj = nn.Conv1d(channels, 2 * inner, 1)
        # Both directions side by side on the channel axis: [forward | backward].
        self.conv1d = nn.Conv1d(2 * inner, 2 * inner, conv_kernel, groups=2 * inner, padding=conv_kernel - 1)
        self.x_proj = nn.Conv1d(2 * inner, 2 * (self.dt_rank + 2 * state_size), 1, groups=2, bias=False)
        self.dt_proj = nn.Conv1d(2 * self.dt_rank, 2 * inner, 1, groups=2, bias=False)
        self.out_proj = nn.Conv1d(inner, channels, 1)

        # Mamba's initialisation: step sizes log-uniform in [dt_min, dt_max] through an inverse softplus bias,
        # A = -(1..N) per channel, D = 1.
        dt = torch.exp(torch.rand(2 * inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, state_size + 1, dtype=torch.float32)).repeat(2 * inner, 1))
        self.D = nn.Parameter(torch.ones(2 * inner))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        r"""
        Args:
            hidden_states (`torch.Tensor` of shape `(batch, channels, height, width)`).

        Returns:
            `torch.Tensor` of the same shape: `hidden_states` plus the block's output.
        """
        batch, channels, height, width = hidden_states.shape
        length = height * width
        tokens = self.norm(hidden_states.flatten(2).transpose(1, 2)).transpose(1, 2)  # (B, C, L)

        x, z = self.in_proj(tokens).chunk(2, dim=1)  # (B, inner, L) each
        # Causal for the forward half (keep the first L outputs), anti-causal for the backward half (the last L).
        conv = self.conv1d(torch.cat([x, x], dim=1))
        x = F.silu(
            torch.cat(
                [conv[:, : self.inner_channels, :length], conv[:, self.inner_channels :, self.conv_kernel - 1 :]], dim=1
            )
        )  # (B, 2 * inner, L)

        projected = self.x_proj(x).view(batch, 2, self.dt_rank + 2 * self.state_size, length)
        dt, B, C = projected.split([self.dt_rank, self.state_size, self.state_size], dim=2)
        delta = self.dt_proj(dt.reshape(batch, 2 * self.dt_rank, length))  # (B, 2 * inner, L)

        y = bidirectional_selective_scan(
            x,
            delta,
            -torch.exp(self.A_log.float()),
            B.contiguous(),
            C.contiguous(),
            D=self.D.float(),
            z=torch.cat([z, z], dim=1),
            delta_bias=self.dt_bias.float(),
            delta_softplus=True,
        )
        y = y[:, : self.inner_channels] + y[:, self.inner_channels :]
        return hidden_states + self.out_proj(y).view(batch, channels, height, width)
