"""Dynamic thresholding for samples larger than `torch.quantile` takes.

Diffusers' schedulers with `thresholding=True` (the default DPM-Solver++ of FS-Diff, DDPM, DDIM, UniPC, ...) clip
their x0 prediction at a quantile of its absolute values with `torch.quantile`, which refuses inputs of more than 2**24
values ("quantile() input tensor is too large"): a single output of 16.7 megapixels, such as 7680x4320, would fail in
the first step. [`large_sample_thresholding`] lends such a scheduler, for one step, the same thresholding computed with
`torch.kthvalue`, which has no such limit and gives the same quantile (linear interpolation between the two nearest
ranks, as `torch.quantile` does).
"""

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

QUANTILE_MAX_VALUES = 2**24
"""The most values `torch.quantile` takes."""


def quantile_by_rank(values: torch.Tensor, q: float) -> torch.Tensor:
    """
    `torch.quantile(values, q, dim=1)` (linear interpolation) for any number of values.

    Args:
        values (`torch.Tensor` of shape `(batch, n)`): float values.
        q (`float`): The quantile, in [0, 1].

    Returns:
        `torch.Tensor` of shape `(batch,)`.
    """
    position = q * (values.shape[1] - 1)
    low = torch.kthvalue(values, math.floor(position) + 1, dim=1).values
    high = torch.kthvalue(values, math.ceil(position) + 1, dim=1).values
    return low + (high - low) * (position - math.floor(position))


def threshold_sample(scheduler, sample: torch.Tensor) -> torch.Tensor:
    """
    Diffusers' dynamic thresholding (`scheduler._threshold_sample`: clip x0 at the `dynamic_thresholding_ratio`
    quantile of its absolute values, at least 1 and at most `sample_max_value`, and divide by it), with the quantile
    from [`quantile_by_rank`].

    Args:
        scheduler: A Diffusers scheduler whose config has `dynamic_thresholding_ratio` and `sample_max_value`.
        sample (`torch.Tensor` of shape `(batch, channels, height, width)`): The predicted x0.

    Returns:
        `torch.Tensor` of the same shape and dtype.
    """
    flat = sample.float().reshape(sample.shape[0], -1)
    limit = quantile_by_rank(flat.abs(), scheduler.config.dynamic_thresholding_ratio)
    limit = limit.clamp(min=1, max=scheduler.config.sample_max_value).unsqueeze(1)
    return (flat.clamp(-limit, limit) / limit).reshape(sample.shape).to(sample.dtype)


@contextmanager
def large_sample_thresholding(scheduler, sample: torch.Tensor) -> Iterator[None]:
    """
    Within the block, a scheduler with `thresholding=True` thresholds with [`threshold_sample`] instead of its own
    `_threshold_sample` when `sample` (shape `(batch, channels, height, width)`) has more than
    [`QUANTILE_MAX_VALUES`] values per image; otherwise it is left as it is.
    """
    large = sample[0].numel() > QUANTILE_MAX_VALUES
    if not large or not scheduler.config.get("thresholding") or not hasattr(scheduler, "_threshold_sample"):
        yield
        return
    scheduler._threshold_sample = functools.partial(threshold_sample, scheduler)
    try:
        yield
    finally:
        del scheduler._threshold_sample  # the class's method again
