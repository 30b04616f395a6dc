"""The data of `quality.py`: the pairs of each dataset in a split of `../shared/data/splits.json`, their modality,
and their sources as the protocol loads them (8-bit grey, optionally centre-cropped)."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fsdiff_diffusers import protocol
from fsdiff_diffusers.pairing import Pair, scan_pairs

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


HKDNET = "HKDnet_peer"


INFRARED_VISIBLE, MEDICAL = "infrared_visible", "medical"
"""The modalities: the groups of `splits.json` (HKDnet_peer's pairs are infrared-visible)."""


SPLITS = ("test", "validation")
"""`--split`: the test pairs are reported (RESULTS.md); the validation pairs choose settings and checkpoints."""


def split_stems(split: str = "test") -> dict[str, list[str]]:
    """Dataset folder -> stems of its pairs in `split` of `splits.json` (infrared-visible, then medical)."""
    splits = json.loads((DATA_DIR / "splits.json").read_text())
    return {
        dataset: [Path(name).stem for name in names]
        for group in splits.values()
        for dataset, names in group[split].items()
    }


def modalities() -> dict[str, str]:
    """Dataset folder -> its modality (`INFRARED_VISIBLE` or `MEDICAL`: its group in `splits.json`), for the
    datasets of every split, HKDnet_peer included."""
    splits = json.loads((DATA_DIR / "splits.json").read_text())
    found = {dataset: group for group, content in splits.items() for split in SPLITS for dataset in content[split]}
    return {**found, HKDNET: INFRARED_VISIBLE}


def source_folders(dataset: str) -> tuple[Path, Path]:
    """The two modality folders of a dataset: ir / vi, or mri / (ct | pet | spect)."""
    root = DATA_DIR / dataset
    if (root / "ir").is_dir():
        return root / "ir", root / "vi"
    (other,) = [path for path in sorted(root.iterdir()) if path.is_dir() and path.name != "mri"]
    return root / "mri", other


def split_pairs(dataset: str, stems: Sequence[str], limit: int | None) -> list[Pair]:
    """The pairs of `dataset` named by `stems` (the first `limit` of them), matched by stem."""
    pairs = [pair for pair in scan_pairs(*source_folders(dataset)).pairs if pair.stem in set(stems)]
    if len(pairs) != len(stems):
        raise FileNotFoundError(f"{dataset}: {len(stems)} pairs in splits.json but {len(pairs)} found")
    return pairs[:limit]


def centre_crop(image: np.ndarray, size: int | None) -> np.ndarray:
    """The central `size` x `size` part of a `(H, W)` image (each side kept whole where it is shorter); `None`: all."""
    if size is None:
        return image
    height, width = image.shape[:2]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return image[top : top + size, left : left + size]


def load_sources(pair: Pair, crop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two sources of `pair` as uint8 `(H, W)` grey (see `protocol.load_grey`), centre-cropped to `crop`."""
    infrared, visible = (protocol.load_grey(path, name) for name, path in pair.paths.items())
    return centre_crop(infrared, crop), centre_crop(visible, crop)
