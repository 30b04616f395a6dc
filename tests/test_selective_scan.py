"""Selective scan (`fsdiff_diffusers.models.selective_scan`): the chunked CPU path and its bidirectional form against
a token-by-token float64 recurrence, gradients included, and the `mamba_ssm` CUDA kernel where it is installed."""

import pytest
import torch
import torch.nn.functional as F

from fsdiff_diffusers.models.selective_scan import bidirectional_selective_scan, selective_scan_fn


def reference_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The recurrence token by token in float64; returns the output and the last state."""
    u, delta, A, B, C = (x.double() for x in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    B = B if B.dim() == 4 else B[:, None]
    C = C if C.dim() == 4 else C[:, None]
    B = B.repeat_interleave(dim // B.shape[1], dim=1)
    C = C.repeat_interleave(dim // C.shape[1], dim=1)
    h = torch.zeros(batch, dim, A.shape[1], dtype=torch.float64)
    ys = []
    for t in range(length):
        h = torch.exp(delta[:, :, t, None] * A) * h + (delta[:, :, t] * u[:, :, t])[..., None] * B[..., t]
        ys.append((h * C[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.double()[:, None]
    if z is not None:
        y = y * F.silu(z.double())
    return y, h


def make_inputs(batch, dim, state, length, groups=None, dtype=torch.float32, seed=0, delta_scale=1.0):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    bc_shape = (batch, state, length) if groups is None else (batch, groups, state, length)
    return dict(
        u=randn(batch, dim, length),
        delta=delta_scale * torch.rand(batch, dim, length, generator=generator, dtype=dtype),
        A=-torch.rand(dim, state, generator=generator, dtype=dtype) * 2 - 0.1,
        B=randn(*bc_shape),
        C=randn(*bc_shape),
        D=randn(dim),
        z=randn(batch, dim, length),
        delta_bias=randn(dim) * 0.5,
    )


def assert_close(actual, expected, tol=1e-4):
    scale = expected.abs().max().clamp_min(1.0)
    assert torch.isfinite(actual).all()
    torch.testing.assert_close(actual.double(), expected, rtol=0, atol=tol * scale.item())


@pytest.mark.parametrize("length", [1, 7, 64, 1000])
@pytest.mark.parametrize("groups", [None, 1, 2])
def test_matches_reference(length, groups):
    inputs = make_inputs(2, 4, 3, length, groups)
    y, last_state = selective_scan_fn(**inputs, delta_softplus=True, return_last_state=True)
    y_ref, last_state_ref = reference_scan(**inputs, delta_softplus=True)
    assert y.dtype == torch.float32 and y.shape == (2, 4, length)
    assert last_state.shape == (2, 4, 3)
    assert_close(y, y_ref)
    assert_close(last_state, last_state_ref)


@pytest.mark.parametrize("use_optional", [False, True])
def test_optional_arguments(use_optional):
    inputs = make_inputs(1, 6, 5, 33, groups=3)
    if not use_optional:
        inputs = {key: inputs[key] for key in ("u", "delta", "A", "B", "C")}
    y = selective_scan_fn(**inputs)
    y_ref, _ = reference_scan(**inputs)
    assert_close(y, y_ref)


def test_long_sequence():
    inputs = make_inputs(1, 2, 2, 16384, groups=2)
    y, last_state = selective_scan_fn(**inputs, delta_softplus=True, return_last_state=True)
    y_ref, last_state_ref = reference_scan(**inputs, delta_softplus=True)
    assert_close(y, y_ref)
    assert_close(last_state, last_state_ref)


@pytest.mark.parametrize("delta_scale", [1e-4, 60.0])
def test_extreme_step_sizes(delta_scale):
    # With delta ~ 60 and A <= -1, every token decays the state by ~exp(-60) or more.
    inputs = make_inputs(2, 4, 3, 300, groups=2, delta_scale=delta_scale)
    inputs["A"] = inputs["A"] - 1.0
    inputs["delta_bias"] = None
    y, last_state = selective_scan_fn(**inputs, return_last_state=True)
    y_ref, last_state_ref = reference_scan(**inputs)
    assert_close(y, y_ref)
    assert_close(last_state, last_state_ref)


def test_large_softplus_step():
    inputs = make_inputs(1, 4, 3, 200)
    inputs["delta"] = inputs["delta"] + 60.0
    y = selective_scan_fn(**inputs, delta_softplus=True)
    y_ref, _ = reference_scan(**inputs, delta_softplus=True)
    assert_close(y, y_ref)


def test_dtypes():
    inputs = make_inputs(1, 4, 3, 50, groups=2, dtype=torch.float64)
    y = selective_scan_fn(**inputs, delta_softplus=True)
    y_ref, _ = reference_scan(**inputs, delta_softplus=True)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)

    half = {key: value.to(torch.bfloat16) for key, value in make_inputs(1, 4, 3, 50).items()}
    assert selective_scan_fn(**half).dtype == torch.bfloat16


def test_gradcheck():
    inputs = make_inputs(1, 4, 3, 10, groups=2, dtype=torch.float64)
    names = list(inputs)
    for value in inputs.values():
        value.requires_grad_(True)

    def scan(*args):
        return selective_scan_fn(**dict(zip(names, args)), delta_softplus=True, return_last_state=True)

    assert torch.autograd.gradcheck(scan, tuple(inputs.values()))


def test_gradients_match_reference():
    inputs = make_inputs(2, 4, 3, 100, groups=2, dtype=torch.float64)
    for value in inputs.values():
        value.requires_grad_(True)
    y = selective_scan_fn(**inputs, delta_softplus=True)
    grads = torch.autograd.grad(y.square().sum(), list(inputs.values()))
    y_ref, _ = reference_scan(**inputs, delta_softplus=True)
    grads_ref = torch.autograd.grad(y_ref.square().sum(), list(inputs.values()))
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref, rtol=1e-8, atol=1e-8)


def test_bidirectional():
    dim, length = 3, 40
    inputs = make_inputs(2, 2 * dim, 4, length, groups=2)
    y = bidirectional_selective_scan(**inputs, delta_softplus=True)

    def half(index, flip):
        part = {}
        for key, value in inputs.items():
            if key in ("B", "C"):
                value = value[:, index]
            elif key in ("A", "D", "delta_bias"):
                value = value[index * dim : (index + 1) * dim]
            else:
                value = value[:, index * dim : (index + 1) * dim]
            part[key] = value.flip(-1) if flip and key in ("u", "delta", "z", "B", "C") else value
        return part

    forward, _ = reference_scan(**half(0, flip=False), delta_softplus=True)
    backward, _ = reference_scan(**half(1, flip=True), delta_softplus=True)
    assert_close(y, torch.cat([forward, backward.flip(-1)], dim=1))


def _mamba_ssm_available():
    try:
        import mamba_ssm.ops.selective_scan_interface  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.skipif(not _mamba_ssm_available(), reason="mamba_ssm is not installed")
def test_mamba_ssm_dispatch():
    inputs = make_inputs(2, 8, 16, 500, groups=2)
    y, last_state = selective_scan_fn(**inputs, delta_softplus=True, return_last_state=True)
    cuda_inputs = {key: value.cuda() for key, value in inputs.items()}
    y_cuda, last_state_cuda = selective_scan_fn(**cuda_inputs, delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(y_cuda.cpu(), y, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(last_state_cuda.cpu(), last_state, rtol=1e-3, atol=1e-3)
