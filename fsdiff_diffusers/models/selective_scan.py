"""Selective scan (the Mamba S6 recurrence) in pure PyTorch, with the `mamba_ssm` CUDA kernel used when available.

The recurrence, per batch element, channel `d` and state `n`:

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t
    y_t = sum_n C_t * h_t + D * u_t

The CPU path is chunked: the sequence is cut into at most sqrt(L) chunks (fewer when batch * dim * N is large, so
that one token of every chunk fits in cache) and the recurrence is stepped through all chunks at once, token by token,
twice: first from zero states to get each chunk's end state, then, after those states have been carried across
chunks, from each chunk's carried-in state to get the outputs. Only decays exp(delta * A) <= 1 are ever formed, so
nothing overflows however large `delta * |A|` is, and no (batch, dim, L, N) tensor is materialised outside autograd's
saved values.
"""

import importlib
import math

import torch
import torch.nn.functional as F


def _mamba_ssm_scan():
    """The `mamba_ssm` CUDA selective scan, or None when `mamba_ssm` is not installed.

    Imported through importlib: Diffusers' remote-code loader reads every `from x import` line of a saved model's module
    (this one is part of them, see `fsdiff_diffusers.remote_code`) and warns that the optional `mamba_ssm` is missing.
    """
    try:
        interface = importlib.import_module("mamba_ssm.ops.selective_scan_interface")
    except ImportError:
        return None
    return interface.selective_scan_fn


# Chunks are sized so that one token of every chunk, (batch, dim, N, n_chunks), stays within about 1 MiB of cache.
_SLICE_ELEMENTS = 2**18


def _chunked_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scan without D, z and bias.

    Args:
        u, delta: (batch, dim, L), already in the compute dtype.
        A: (dim, N).
        B, C: (batch, groups, N, L).

    Returns:
        y: (batch, dim, L) and the last state: (batch, dim, N).
    """
    batch, dim, length = u.shape
    groups, state = B.shape[1], A.shape[1]
    n_chunks = max(1, min(math.isqrt(length), _SLICE_ELEMENTS // (batch * dim * state)))
    chunk = -(-length // n_chunks)
    n_chunks = -(-length // chunk)
    pad = n_chunks * chunk - length
    if pad:
        # Padded tokens have delta = 0: no decay and no input, so they leave the last state unchanged.
        u, delta, B, C = (F.pad(x, (0, pad)) for x in (u, delta, B, C))

    def tokens_first(x: torch.Tensor) -> torch.Tensor:
        # (batch, groups, channels, n_chunks * chunk) -> (chunk, batch, groups, channels, n_chunks)
        return x.reshape(batch, groups, -1, n_chunks, chunk).permute(4, 0, 1, 2, 3).contiguous()

    # Token t of every chunk is one contiguous (batch, groups, dim / groups, N, n_chunks) slice.
    delta = tokens_first(delta).unsqueeze(-2)  # (chunk, batch, groups, dim / groups, 1, n_chunks)
    deltas, delta_us = delta.unbind(0), (delta * tokens_first(u).unsqueeze(-2)).unbind(0)
    Bs, Cs = tokens_first(B).unsqueeze(3).unbind(0), tokens_first(C).unsqueeze(3).unbind(0)
    A = (A * math.log2(math.e)).reshape(groups, -1, state, 1)  # exp(delta * A) = exp2(delta * A * log2(e))

    def step(t: int, h: torch.Tensor) -> torch.Tensor:
        decay = torch.exp2_(deltas[t] * A)
        return (decay * h).addcmul_(delta_us[t], Bs[t])

    # (a) End states of every chunk, each scanned from a zero state.
    h = torch.zeros(batch, groups, dim // groups, state, n_chunks, dtype=u.dtype, device=u.device)
    for t in range(chunk):
        h = step(t, h)

    # (b) Carry the states across chunks; a chunk decays the state by exp(A * sum of its deltas).
    chunk_decays = torch.exp2(delta.sum(0) * A).unbind(-1)
    carry = torch.zeros_like(h[..., 0])
    carries = []
    for c, end_state in enumerate(h.unbind(-1)):
        carries.append(carry)
        carry = torch.addcmul(end_state, chunk_decays[c], carry)

    # (c) Scan every chunk again, now from its carried-in state, and read the outputs.
    h = torch.stack(carries, dim=-1)
    ys = []
    for t in range(chunk):
        h = step(t, h)
        ys.append((h * Cs[t]).sum(-2))
    y = torch.stack(ys).permute(1, 2, 3, 4, 0).reshape(batch, dim, -1)[..., :length]
    return y, carry.flatten(1, 2)


def selective_scan_fn(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan with the semantics of `mamba_ssm`'s `selective_scan_fn`.

    Args:
        u: (batch, dim, L) input.
        delta: (batch, dim, L) step sizes.
        A: (dim, N) real state matrix (diagonal per channel).
        B: (batch, N, L) or (batch, groups, N, L) input projections; group `g` serves channels
            `g * dim / groups` to `(g + 1) * dim / groups - 1`.
        C: (batch, N, L) or (batch, groups, N, L) output projections, grouped like `B`.
        D: (dim,) skip connection.
        z: (batch, dim, L) gate: the output is multiplied by `silu(z)`.
        delta_bias: (dim,) added to `delta` before the optional softplus.
        delta_softplus: apply softplus to `delta`.
        return_last_state: also return the last state.

    Returns:
        (batch, dim, L) output in the dtype of `u`, and with `return_last_state` the (batch, dim, N) last state.
        Computed in float32, or float64 for float64 inputs.
    """
    if u.is_cuda:
        mamba_scan = _mamba_ssm_scan()
        if mamba_scan is not None:
            return mamba_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)

    dtype_in = u.dtype
    dtype = torch.float64 if dtype_in == torch.float64 else torch.float32
    u, delta, A, B, C = (x.to(dtype) for x in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)

    y, last_state = _chunked_scan(u, delta, A, B, C)
    if D is not None:
        y = y + u * D.to(dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(dtype))
    y = y.to(dtype_in)
    return (y, last_state) if return_last_state else y


def bidirectional_selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """Scan the first half of the channels forward and the second half backward, in one grouped scan.

    Args:
        u, delta, z: (batch, 2 * dim, L) in natural token order.
        A: (2 * dim, N).
        B, C: (batch, 2, N, L) in natural token order; index 0 serves the forward, 1 the backward channels.
        D, delta_bias: (2 * dim,).
        delta_softplus: apply softplus to `delta`.

    Returns:
        (batch, 2 * dim, L) in natural token order.
    """
    dim = u.shape[1] // 2

    def flip_backward(x: torch.Tensor | None, split: int) -> torch.Tensor | None:
        if x is None:
            return None
        forward, backward = x.split(split, dim=1)
        return torch.cat([forward, backward.flip(-1)], dim=1)

    y = selective_scan_fn(
        flip_backward(u, dim),
        flip_backward(delta, dim),
        A,
        flip_backward(B, 1),
        flip_backward(C, 1),
        D,
        flip_backward(z, dim),
        delta_bias,
        delta_softplus,
    )
    return flip_backward(y, dim)
