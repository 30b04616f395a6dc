"""Overlapping tiles of the canvas, for `FSDiffPipeline` calls whose output is too large for one pass
(`FSDiffTilingMixin`).

A tiled call keeps every whole-image tensor (the conditions, the noise, the sample and the scheduler's state: a few
dozen bytes per pixel) and runs the encoder and the U-Net, whose activations cost hundreds of bytes per pixel, on one
tile at a time. The tiles' predictions are blended with weights that ramp smoothly (sin²) across every overlap with a
neighbour and stay 1 at the canvas's own edges, then divided by the sum of the weights, so the scheduler steps one
whole-image sample: noise drawn once, no seams from tiles disagreeing about it. Tiles start at multiples of the U-Net's
downsampling factor, so every tile sees the same pixel grid at every level as the whole image would.

Each tile's feature maps come from the clarity encoder run on that tile; the context tokens, which summarise the whole
image, come from one encoder pass over the canvas scaled down to a tile's pixels and serve every tile. What still
differs from an untiled call is each tile's own normalisation statistics (GroupNorm over the tile, not the image): on
validation pairs the outputs differ by about 0.3 grey levels on average, spread over the image, with no seams.

```py
>>> from fsdiff_diffusers.pipelines.tiling import plan_tiles

>>> [tile.rows for tile in plan_tiles((1088, 1920), tile_size=512, overlap=64, multiple=16)]
```
"""

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..image_processor import nhwc, resize
from .checks import available_memory

DEFAULT_TILE_SIZE = 1024
"""The tiles' side in pixels where tiling turns on by itself: about 0.5 GiB of activations in float32."""

DEFAULT_TILE_OVERLAP = 128
"""Pixels by which neighbouring tiles overlap at least (`tile_overlap`)."""


@dataclass(frozen=True)
class Tile:
    """
    One tile of the canvas.

    Args:
        rows (`slice`): Its rows of the canvas.
        cols (`slice`): Its columns.
        ramps (`tuple[bool, bool, bool, bool]`): Whether its weight ramps up from its top, down to its bottom, up
            from its left and down to its right edge (where it overlaps a neighbour).
    """

    rows: slice
    cols: slice
    ramps: tuple[bool, bool, bool, bool]

    def weight(self, overlap: int, device: torch.device | None = None) -> torch.Tensor:
        """
        The tile's blending weight, of shape `(rows, cols)`: the outer product of a row and a column profile that are
        `sin²` ramps over `overlap` pixels on the ramping sides (strictly positive, so the sum of weights never
        vanishes) and 1 elsewhere.
        """
        top, bottom, left, right = self.ramps
        rows = _profile(self.rows.stop - self.rows.start, overlap, top, bottom, device)
        cols = _profile(self.cols.stop - self.cols.start, overlap, left, right, device)
        return rows[:, None] * cols[None, :]


def _profile(length: int, overlap: int, start: bool, stop: bool, device: torch.device | None) -> torch.Tensor:
    """A `(length,)` weight profile: `sin²` ramps over `overlap` pixels at the flagged ends, 1 elsewhere."""
    profile = torch.ones(length, device=device)
    ramp = torch.sin(math.pi / 2 * (torch.arange(overlap, device=device) + 0.5) / overlap) ** 2
    if start:
        profile[:overlap] = ramp
    if stop:
        profile[length - overlap :] = profile[length - overlap :] * ramp.flip(0)
    return profile


def tile_spans(length: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """
    The `(start, stop)` of the tiles along one axis: as few tiles of at most `tile` pixels as cover `length` with
    neighbours overlapping by at least `overlap` pixels, each as short as that allows (rounded up to a multiple of
    `multiple`, so that no work goes into overlap beyond what is asked), spread evenly with every start a multiple of
    `multiple` (overlaps may then fall short by at most `multiple / 2`). `length` and `tile` must be multiples of
    `multiple`; one span when `tile >= length`.
    """
    if tile >= length:
        return [(0, length)]
    count = 1 + math.ceil((length - tile) / (tile - overlap))
    size = min(tile, -(-(length + (count - 1) * overlap) // (count * multiple)) * multiple)
    starts = [round(i * (length - size) / (count - 1) / multiple) * multiple for i in range(count)]
    return [(start, start + size) for start in starts]


def plan_tiles(canvas_size: tuple[int, int], tile_size: int, overlap: int, multiple: int) -> list[Tile]:
    """
    The tiles of a canvas, row by row.

    Args:
        canvas_size (`tuple[int, int]`): The canvas `(height, width)`, multiples of `multiple`.
        tile_size (`int`): The tiles' largest side in pixels, rounded down to a multiple of `multiple` (at least
            `multiple`); see [`tile_spans`] for how the tiles are then laid out along each axis.
        overlap (`int`): The least overlap of neighbouring tiles, over which their weights ramp.
        multiple (`int`): The U-Net's downsampling factor: tile sides and starts are multiples of it.

    Returns:
        `list[Tile]`: one [`Tile`] for an image that fits into one, else overlapping tiles that cover the canvas.
    """
    tile_size = max(multiple, tile_size // multiple * multiple)
    rows, cols = (tile_spans(length, tile_size, overlap, multiple) for length in canvas_size)
    height, width = canvas_size
    return [
        Tile(slice(top, bottom), slice(left, right), (top > 0, bottom < height, left > 0, right < width))
        for top, bottom in rows
        for left, right in cols
    ]


def blend_weights(tiles: list[Tile], canvas_size: tuple[int, int], overlap: int, device: torch.device) -> torch.Tensor:
    """The sum of the tiles' weights over the canvas, shape `(height, width)`: what blended predictions divide by."""
    total = torch.zeros(canvas_size, device=device)
    for tile in tiles:
        total[tile.rows, tile.cols] += tile.weight(overlap, device)
    return total


def blend(
    tiles: list[Tile],
    shape: tuple[int, ...],
    overlap: int,
    device: torch.device,
    tile_output: Callable[[Tile], torch.Tensor],
) -> torch.Tensor:
    """
    One whole-canvas tensor from per-tile outputs: `tile_output(tile)` (shape `(batch, channels, tile rows, tile
    cols)`) of every tile, weighted by [`Tile.weight`], summed and divided by [`blend_weights`].

    Returns:
        `torch.Tensor` of `shape` `(batch, channels, height, width)`, float32.
    """
    blended = torch.zeros(shape, device=device)
    for tile in tiles:
        blended[..., tile.rows, tile.cols] += tile_output(tile).float() * tile.weight(overlap, device)
    return blended / blend_weights(tiles, shape[-2:], overlap, device)


def _is_int(value) -> bool:
    """Whether `value` is an int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class FSDiffTilingMixin:
    """The tiled denoising of [`FSDiffPipeline`] (mixed in before [`DiffusionPipeline`]) and the check of its
    arguments."""

    def check_tiling(self, tile_size: int | None, tile_overlap: int | None) -> None:
        """Refuse a `tile_size` that is not an int of at least the U-Net's downsampling factor, or a `tile_overlap`
        that is negative or more than half of the tile size (of [`DEFAULT_TILE_SIZE`] when tiling is automatic);
        `None` takes the defaults."""
        factor = self.unet.downsample_factor
        if tile_size is not None and (not _is_int(tile_size) or tile_size < factor):
            raise ValueError(
                f"`tile_size` must be an int of at least {factor} (the U-Net's downsampling factor) or None for "
                f"automatic tiling, got {tile_size!r}; 512 to 1024 suits most machines."
            )
        if tile_overlap is None:
            return
        size = tile_size or DEFAULT_TILE_SIZE
        if not _is_int(tile_overlap) or tile_overlap < 0 or tile_overlap * 2 > size:
            which = f"`tile_size` ({tile_size})" if tile_size else f"the automatic tiles' size ({size})"
            raise ValueError(f"`tile_overlap` must be an int from 0 to half of {which}, got {tile_overlap!r}.")

    def tile_size_for(
        self,
        input_size: tuple[int, int],
        output_size: tuple[int, int],
        batch_size: int,
        device: torch.device,
        tile_size: int | None,
    ) -> int | None:
        """
        The tile size a call denoises with, `None` for one pass over the whole canvas: the given `tile_size` if the
        canvas does not fit into one such tile; without one, [`DEFAULT_TILE_SIZE`] for a canvas of more than
        [`max_untiled_pixels`] pixels or one whose untiled [`estimate_memory`] exceeds the memory available.
        """
        canvas_height, canvas_width = self.canvas_size(*output_size)
        if tile_size is None:
            needed, available = self.estimate_memory(input_size, output_size, batch_size), available_memory(device)
            too_large = canvas_height * canvas_width > self.max_untiled_pixels
            tile_size = DEFAULT_TILE_SIZE if too_large or (available is not None and needed > available) else None
        fits = tile_size is None or tile_size >= max(canvas_height, canvas_width)
        return None if fits else tile_size

    def encoder_view(self, conditions: torch.Tensor, tile_size: int | None) -> torch.Tensor:
        r"""
        What the clarity encoder sees for the context tokens: the canvas itself, or for a tiled call the canvas
        scaled down (bicubic) to at most one tile's pixels, so that every tile gets the whole image's context for the
        cost of one more tile-sized encoder pass. (On validation pairs, tiles with this context agreed better with an
        untiled call than tiles with their own context, and as well as with the full-size canvas's: what differs is
        the tiles' own normalisation statistics, not the context.) Also the clarity of an untiled call.

        Args:
            conditions (`torch.Tensor` of shape `(batch, 2, height, width)`): The canvas's upsampled sources in [0, 1].
            tile_size (`int`, *optional*): The call's tile size, `None` when untiled.

        Returns:
            `torch.Tensor` of shape `(batch, 2, h, w)` in [-1, 1], `(h, w)` multiples of the U-Net's downsampling
            factor.
        """
        height, width = conditions.shape[-2:]
        if tile_size is not None:
            factor, shrink = self.unet.downsample_factor, min(1.0, tile_size / (height * width) ** 0.5)
            size = tuple(max(factor, round(side * shrink / factor) * factor) for side in (height, width))
            conditions = resize(conditions, size)
        return conditions * 2 - 1

    def predict_tiles(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        conditions: torch.Tensor,
        context: torch.Tensor,
        semantic_embeds: torch.Tensor | None,
        tiles: list[Tile],
        tile_overlap: int,
        progress_bar: Any,
    ) -> torch.Tensor:
        r"""
        The U-Net's prediction for the whole canvas, one tile at a time (see [`~pipelines.tiling`]): each tile's
        conditions are encoded for its feature maps, its prediction weighted by [`Tile.weight`]; the sum is divided by
        the sum of the weights.

        Args:
            sample (`torch.Tensor` of shape `(batch, 1, height, width)`): The scaled model input of the whole canvas.
            timestep (`torch.Tensor`): The current timestep.
            conditions (`torch.Tensor` of shape `(batch, 2, height, width)`): The canvas's conditions in [-1, 1].
            context (`torch.Tensor` of shape `(batch, num_tokens, context_dim)`): The whole image's context tokens.
            semantic_embeds (`torch.Tensor` of shape `(batch, 2, projection_dim)`, *optional*): For the encoder.
            tiles (`list[Tile]`): The tiles of [`~pipelines.tiling.plan_tiles`].
            tile_overlap (`int`): Their overlap, over which the weights ramp.
            progress_bar: Advanced once per tile.

        Returns:
            `torch.Tensor` of shape `(batch, 1, height, width)`, in `sample`'s dtype (blended in float32).
        """

        def tile_prediction(tile: Tile) -> torch.Tensor:
            window = (..., tile.rows, tile.cols)
            tile_conditions = conditions[window]
            encoded = self.clarity_encoder(
                tile_conditions.to(self.clarity_encoder.dtype), semantic_embeds=semantic_embeds
            )
            model_input = nhwc(torch.cat([sample[window], tile_conditions], dim=1))
            output = self.unet(model_input, timestep, context, encoded.features, return_dict=False)[0]
            progress_bar.update()
            return output

        prediction = blend(tiles, sample.shape, tile_overlap, sample.device, tile_prediction)
        return prediction.to(sample.dtype)

    def tiled_clarity(
        self, conditions: torch.Tensor, semantic_embeds: torch.Tensor | None, tiles: list[Tile], tile_overlap: int
    ) -> torch.Tensor:
        r"""
        The encoder's clarity of every tile, resized (bilinear) to the tile and blended like the predictions: the same
        maps as an untiled call's up to the tiles' borders (the whole image scaled down to one tile would look sharper
        than it is).

        Args:
            conditions (`torch.Tensor` of shape `(batch, 2, height, width)`): The canvas's conditions in [-1, 1].
            semantic_embeds (`torch.Tensor` of shape `(batch, 2, projection_dim)`, *optional*): For the encoder.
            tiles (`list[Tile]`): The call's tiles.
            tile_overlap (`int`): Their overlap.

        Returns:
            `torch.Tensor` of shape `(batch, 2, height, width)` in (0, 1), float32.
        """

        def tile_clarity(tile: Tile) -> torch.Tensor:
            tile_conditions = conditions[..., tile.rows, tile.cols].to(self.clarity_encoder.dtype)
            clarity = self.clarity_encoder(tile_conditions, semantic_embeds=semantic_embeds).clarity
            return F.interpolate(clarity.float(), size=tile_conditions.shape[-2:], mode="bilinear")

        return blend(tiles, conditions.shape, tile_overlap, conditions.device, tile_clarity)
