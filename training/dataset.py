"""Paired training data for FS-Diff: source pairs -> random HR crops, degraded LR conditions, clarity labels.

Pairs come from a folder (`ir/` and `vi/` matched by file stem, optional `fused/` targets), from a `datasets`
dataset with two or three image columns, or from the train split of the shared data folder (`splits.json`).
Every item is drawn deterministically from `(seed, epoch, index)`, so an interrupted run replays the same crops
and degradations when it resumes.
"""

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from fsdiff_diffusers.datasets_io import ImageSource, PairRecord, opened_image
from fsdiff_diffusers.degradations import DegradationLimits, clarity_label, degrade, sample_degradation
from fsdiff_diffusers.image_processor import load_image, resize, to_luminance
from fsdiff_diffusers.pairing import scan_pairs

MODALITIES = ("infrared", "visible")
"""The two sources of a pair, in the channel order of the conditions (the pipeline's order)."""


def image_size(source: ImageSource, what: str) -> tuple[int, int]:
    """The `(width, height)` of `source`, read from its header."""
    with opened_image(source, what) as image:
        return image.size


def check_pairs(records: Sequence[PairRecord], skip_broken: bool) -> list[PairRecord]:
    """Keep the records whose images all decode and share one size; name the others in a warning or an error."""
    good, problems = [], []
    for record in records:
        try:
            sizes = {
                role: image_size(source, f"the {role} image of '{record.name}'")
                for role, source in record.images.items()
            }
        except ValueError as error:
            problems.append(str(error))
            continue
        if len(set(sizes.values())) > 1:
            described = ", ".join(f"{role} {w}x{h}" for role, (w, h) in sizes.items())
            problems.append(f"the images of '{record.name}' differ in size ({described})")
            continue
        good.append(record)
    if problems:
        message = "Broken training pairs: " + "; ".join(problems) + "."
        if not skip_broken:
            raise ValueError(message + " Fix or remove them, or pass skip_broken=True to leave them out.")
        warnings.warn(message + " They were left out.", UserWarning, stacklevel=2)
    if not good:
        raise ValueError("No usable training pair is left.")
    return good


def records_from_folder(root: str | os.PathLike, skip_broken: bool = False) -> list[PairRecord]:
    """Pairs of `root/ir` and `root/vi` (and `root/fused` targets when that folder exists), matched by stem."""
    root = Path(root)
    folders, names = [root / "ir", root / "vi"], list(MODALITIES)
    if (root / "fused").is_dir():
        folders.append(root / "fused")
        names.append("target")
    matching = scan_pairs(*folders, names=names)
    unmatched = matching.describe_unmatched()
    if unmatched and not skip_broken:
        raise ValueError(
            f"In '{root}': {unmatched[0].upper()}{unmatched[1:]}. Pass skip_broken=True to leave them out."
        )
    if unmatched:
        warnings.warn(f"In '{root}': {unmatched}.", UserWarning, stacklevel=2)
    return [PairRecord(pair.stem, {role: str(path) for role, path in pair.paths.items()}) for pair in matching.pairs]


def records_from_splits(
    data_dir: str | os.PathLike, group: str = "infrared_visible", split: str = "train"
) -> list[PairRecord]:
    """The pairs `splits.json` assigns to `split` in `data_dir` (`<dataset>/ir|vi`, or the medical folders)."""
    data_dir = Path(data_dir)
    splits = json.loads((data_dir / "splits.json").read_text())[group][split]
    records = []
    for dataset, files in splits.items():
        # Infrared (or MRI) first, as the pipeline's `infrared` argument; the other modality second.
        folders = sorted(
            (p for p in (data_dir / dataset).iterdir() if p.is_dir()), key=lambda p: p.name not in ("ir", "mri")
        )
        if len(folders) != 2:
            raise ValueError(
                f"Expected two modality folders in '{data_dir / dataset}', found {[f.name for f in folders]}."
            )
        for file in files:
            records.append(
                PairRecord(
                    f"{dataset}/{file}", {role: str(folder / file) for role, folder in zip(MODALITIES, folders)}
                )
            )
    return records


def parse_scale(text: str) -> tuple[float, float]:
    """`"4"` -> `(4, 4)`; `"2-8"` -> `(2, 8)`: the range the per-item downscale factor is drawn from."""
    parts = str(text).split("-")
    try:
        low, high = float(parts[0]), float(parts[-1])
    except ValueError as error:
        raise ValueError(f"A scale must be a number or a range like '2-8', got {text!r}.") from error
    if len(parts) > 2 or not 1 <= low <= high < float("inf"):
        raise ValueError(f"A scale must be a number >= 1 or a range 'low-high' with 1 <= low <= high, got {text!r}.")
    return low, high


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random stream of one item of one epoch: the same `(seed, epoch, index)` always draws the same item."""
    return torch.Generator().manual_seed(hash((seed, epoch, index)) % (2**63))


class FusionPairDataset(Dataset):
    r"""
    Random crops of registered source pairs with per-modality degradations.

    Each item is a dict of:
        - `"sources"` (`torch.Tensor` of shape `(2, resolution, resolution)`): the HR luminance of infrared and
          visible in [0, 1];
        - `"conditions"` (same shape): each source degraded (blur, bicubic downscale by the item's scale, noise)
          and bicubically upsampled back to the crop size, in [0, 1];
        - `"clarity"` (`torch.Tensor` of shape `(2,)`): the clarity labels of the two degraded sources;
        - `"scale"` (`torch.Tensor` of shape `()`): the downscale factor;
        - `"target"` (`torch.Tensor` of shape `(1, resolution, resolution)`), only when the records have targets.

    Args:
        records (`Sequence[PairRecord]`): The pairs, from `records_from_folder`, `records_from_hf_dataset` or
            `records_from_splits`.
        resolution (`int`): Side of the square HR crops; smaller images are first upscaled to fit.
        scale (`tuple[float, float]`): Range of the downscale factor, drawn uniformly per item.
        limits ([`DegradationLimits`]): Blur and noise limits.
        seed (`int`): Seeds every item together with the epoch and the index.
        random_flip (`bool`, defaults to `True`): Random horizontal and vertical flips.
        skip_broken (`bool`, defaults to `False`): Leave out (with a warning) pairs that cannot be decoded or differ
            in size, instead of raising.
        cache_images (`bool`, defaults to `False`): Keep every decoded pair in memory after its first use (float16
            luminance, about 4 MB a megapixel pair), so that later epochs skip the decoding; per data loader worker.
    """

    def __init__(
        self,
        records: Sequence[PairRecord],
        resolution: int,
        scale: tuple[float, float] = (4.0, 4.0),
        limits: DegradationLimits = DegradationLimits(),
        seed: int = 0,
        random_flip: bool = True,
        skip_broken: bool = False,
        cache_images: bool = False,
    ):
        self.records = check_pairs(records, skip_broken)
        self.resolution = resolution
        self.scale = scale
        self.limits = limits
        self.seed = seed
        self.random_flip = random_flip
        self.epoch = 0
        self.has_targets = all("target" in record.images for record in self.records)
        self.cache: dict[int, torch.Tensor] | None = {} if cache_images else None

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops and degradations of `epoch` (call before iterating over each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def load(self, record: PairRecord) -> torch.Tensor:
        """The luminance of the record's images, `(num_roles, H, W)` in [0, 1]: `MODALITIES` (+ target) order."""
        roles = [*MODALITIES, "target"] if self.has_targets else list(MODALITIES)
        planes = []
        for role in roles:
            what = f"the {role} image of '{record.name}'"
            try:
                with opened_image(record.images[role], what) as opened:
                    image = load_image(opened, role)
            except (OSError, ValueError) as error:
                raise ValueError(f"Cannot decode {what}: {error}") from error
            planes.append(to_luminance(image)[0])
        return torch.cat(planes)

    def decoded(self, index: int) -> torch.Tensor:
        """[`load`] of record `index`, from the cache when `cache_images` is on (float16 there, float32 returned)."""
        if self.cache is None:
            return self.load(self.records[index])
        if index not in self.cache:
            self.cache[index] = self.load(self.records[index]).half()
        return self.cache[index].float()

    def crop(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random `resolution` square of `images` `(C, H, W)`, the same window in every channel, randomly flipped."""
        size = self.resolution
        height, width = images.shape[-2:]
        if min(height, width) < size:
            factor = size / min(height, width)
            images = resize(images[None], (max(size, round(height * factor)), max(size, round(width * factor))))[0]
            height, width = images.shape[-2:]
        top, left, flip_h, flip_v = (
            (torch.rand(4, generator=generator) * torch.tensor([height - size + 1, width - size + 1, 2, 2]))
            .long()
            .tolist()
        )
        images = images[:, top : top + size, left : left + size]
        if self.random_flip and flip_h:
            images = images.flip(-1)
        if self.random_flip and flip_v:
            images = images.flip(-2)
        return images

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = item_generator(self.seed, self.epoch, index)
        images = self.crop(self.decoded(index), generator)
        sources = images[: len(MODALITIES)]
        low, high = self.scale
        scale = low + (high - low) * torch.rand(1, generator=generator).item()
        conditions, labels = [], []
        for source in sources:
            strength = sample_degradation(generator, self.limits)
            lr = degrade(source[None, None], scale, strength.blur_sigma, strength.noise_std, generator)
            conditions.append(resize(lr, tuple(source.shape))[0])
            labels.append(clarity_label(scale, strength.blur_sigma, strength.noise_std, self.limits))
        item = {
            "sources": sources,
            "conditions": torch.cat(conditions),
            "clarity": torch.tensor(labels),
            "scale": torch.tensor(scale),
        }
        if self.has_targets:
            item["target"] = images[len(MODALITIES) :]
        return item


class EpochShuffleSampler(Sampler[int]):
    """A random order of `range(num_items)` that depends only on `(seed, epoch)`: resumable without saved RNG state."""

    def __init__(self, num_items: int, seed: int = 0):
        self.num_items = num_items
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.num_items, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_items
