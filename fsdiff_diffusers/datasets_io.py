"""Registered pairs from a 🤗 `datasets` dataset: open one (a Hub dataset, an `imagefolder` folder or a folder written
by `save_to_disk`), take its image columns without decoding them, and open one image when it is needed.

`fsdiff fuse --dataset_name/--dataset_path` reads the rows one at a time; the training script keeps every pair's
encoded images as [`PairRecord`]s ([`records_from_hf_dataset`]). `datasets` is an optional dependency (the `train`
extra): it is imported only when a dataset is opened or read.

```py
>>> from fsdiff_diffusers.datasets_io import open_dataset, undecoded_columns
>>> dataset = undecoded_columns(open_dataset(path="pairs_on_disk", split="test"), ["infrared", "visible"])
>>> dataset[0]["infrared"]  # {"bytes": b"\\x89PNG...", "path": "01.png"}: decoded by `opened_image`
```
"""

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import PIL.Image

if TYPE_CHECKING:
    import datasets

ImageSource = str | os.PathLike | bytes | PIL.Image.Image
"""A file path, the encoded bytes of an image file, or a decoded PIL image."""

INSTALL_HINT = 'pip install "fsdiff-diffusers[train]"'
"""How to install `datasets` (it comes with the training extra)."""


@dataclass(frozen=True)
class PairRecord:
    """One training scene: its name (for messages) and an image source per role (`infrared`, `visible`, `target`)."""

    name: str
    images: dict[str, ImageSource]


@contextlib.contextmanager
def opened_image(source: ImageSource, what: str) -> Iterator[PIL.Image.Image]:
    """`source` opened lazily (header only) and closed afterwards; `ValueError` naming `what` when undecodable."""
    if isinstance(source, PIL.Image.Image):
        yield source
        return
    try:
        image = PIL.Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        raise ValueError(f"Cannot decode {what}: {error}") from error
    with image:
        yield image


def import_datasets() -> Any:
    """The `datasets` module, or an `ImportError` that says how to install it."""
    try:
        import datasets
    except ImportError as error:
        raise ImportError(f"reading a `datasets` dataset needs the datasets package: {INSTALL_HINT}") from error
    return datasets


def open_dataset(
    name: str | None = None, path: str | os.PathLike | None = None, config_name: str | None = None, split: str = "train"
) -> "datasets.Dataset":
    """
    One split of a dataset, given by exactly one of `name` and `path`.

    Args:
        name (`str`, *optional*): a Hub dataset id (`datasets.load_dataset(name, config_name, split=split)`), or a local
            folder of images read with the `imagefolder` builder (its `metadata.jsonl` may name several image columns,
            as `infrared_file_name` and `visible_file_name`).
        path (`str` or `os.PathLike`, *optional*): a folder written by `Dataset.save_to_disk` or
            `DatasetDict.save_to_disk` (`datasets.load_from_disk`).
        config_name (`str`, *optional*): the configuration of a Hub dataset.
        split (`str`, defaults to `"train"`): the split to read; a folder written by `Dataset.save_to_disk` holds one
            dataset and no splits, and is read whole. `imagefolder` folders without split subfolders are `"train"`.

    Returns:
        `datasets.Dataset`.
    """
    if (name is None) == (path is None):
        raise ValueError("pass exactly one of `name` (a Hub id or an image folder) and `path` (a save_to_disk folder).")
    datasets = import_datasets()
    if path is not None:
        loaded = datasets.load_from_disk(os.fspath(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"the dataset '{path}' has no split '{split}'; its splits are {', '.join(loaded)}.")
            return loaded[split]
        return loaded
    if os.path.isdir(name):
        if any((Path(name) / marker).is_file() for marker in ("dataset_dict.json", "state.json")):
            raise ValueError(f"'{name}' was written by save_to_disk: read it with load_from_disk (a path, not a name).")
        return datasets.load_dataset("imagefolder", data_dir=name, split=split)
    return datasets.load_dataset(name, config_name, split=split)


def undecoded_columns(dataset: "datasets.Dataset", columns: Sequence[str]) -> "datasets.Dataset":
    """
    `dataset` reduced to `columns` (checked to exist), its `Image` columns left encoded: a row then holds
    `{"bytes", "path"}` per image (see [`encoded`]) instead of a decoded PIL image.
    """
    datasets = import_datasets()
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise ValueError(f"Columns {missing} are not in the dataset (it has {dataset.column_names}).")
    for column in columns:
        if isinstance(dataset.features[column], datasets.Image):
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
    return dataset.select_columns(list(dict.fromkeys(columns)))


def encoded(value: dict | str) -> ImageSource:
    """An undecoded `datasets.Image` value (`{"bytes", "path"}`) or a path string as an [`ImageSource`]."""
    if isinstance(value, dict):
        return value["bytes"] if value.get("bytes") is not None else value["path"]
    return value


def records_from_hf_dataset(
    dataset: "datasets.Dataset", infrared_column: str, visible_column: str, target_column: str | None = None
) -> list[PairRecord]:
    """Records of a `datasets.Dataset` with image (or path) columns.

    The images stay encoded (bytes or paths) until an item is drawn, but all of them are held in memory: for datasets
    larger than memory, save them to a folder and use `training.dataset.records_from_folder`.
    """
    columns = {"infrared": infrared_column, "visible": visible_column, "target": target_column}
    columns = {role: column for role, column in columns.items() if column is not None}
    records = []
    for index, row in enumerate(undecoded_columns(dataset, list(columns.values()))):
        images = {role: encoded(row[column]) for role, column in columns.items()}
        path = row[infrared_column].get("path") if isinstance(row[infrared_column], dict) else None
        records.append(PairRecord(f"row {index}" + (f" ({path})" if path else ""), images))
    return records
