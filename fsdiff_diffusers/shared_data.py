"""The shared folder of real registered pairs (`../shared/data` beside a checkout; its README.md describes it): where it
is, and the files of a pair of its `splits.json`. Optional everywhere: the demo and the gallery fall back to the
synthetic pair of [`~fsdiff_diffusers.example_pair.example_pair`] without it.

```py
>>> from fsdiff_diffusers.shared_data import find_data_dir, split_pair

>>> data_dir = find_data_dir()  # None where there is no such folder
>>> infrared, visible = split_pair(data_dir, "TNO")  # the first test pair: TNO/ir/01.png, TNO/vi/01.png
```
"""

import json
import os
from pathlib import Path

DATA_ENV = "FSDIFF_DATA"
"""The environment variable that names the shared data folder, when it is not beside the checkout or the cwd."""

_FIRST_SOURCES = ("ir", "mri")  # the first source's folder (infrared or MRI); the dataset's other folder is the second


def find_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The shared data folder: `explicit`, else `$FSDIFF_DATA`, else `../shared/data` from the current directory or
    from the checkout this package runs from; `None` where none of them holds a `splits.json`.

    Raises:
        `ValueError`: when `explicit` (or `$FSDIFF_DATA`) is given but holds no `splits.json`.
    """
    named = explicit or os.environ.get(DATA_ENV)
    if named:
        if not (Path(named) / "splits.json").is_file():
            raise ValueError(f"the data folder '{named}' holds no splits.json; pass the shared data folder itself.")
        return Path(named)
    checkout = Path(__file__).resolve().parents[1]
    for candidate in (Path.cwd().parent / "shared" / "data", checkout.parent / "shared" / "data"):
        if (candidate / "splits.json").is_file():
            return candidate
    return None


def split_pair(data_dir: str | os.PathLike, dataset: str, split: str = "test", index: int = 0) -> tuple[Path, Path]:
    """The files `(first, second)` of the `index`-th pair of `dataset` in `split` of `data_dir/splits.json`: infrared
    and visible (`ir/`, `vi/`), or MRI and CT / PET / SPECT (`mri/` and the other folder)."""
    data_dir = Path(data_dir)
    groups = json.loads((data_dir / "splits.json").read_text()).values()
    (names,) = [group[split][dataset] for group in groups if dataset in group.get(split, {})]
    folders = sorted(path for path in (data_dir / dataset).iterdir() if path.is_dir())
    first = next(folder for folder in folders if folder.name in _FIRST_SOURCES)
    (second,) = [folder for folder in folders if folder != first]
    return first / names[index], second / names[index]
