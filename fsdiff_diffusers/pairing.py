"""Match the images of several folders by file stem: `infrared/05.png` goes with `visible/05.jpg`.

Registered datasets store each modality in its own folder with one file name per scene. The
functions here pair those files by stem (the name without its extension), whatever their image
format, so that an image is never fused or evaluated with the wrong partner.

```py
>>> from fsdiff_diffusers.pairing import match_pairs
>>> pairs = match_pairs("TNO/ir", "TNO/vi")  # names default to ("infrared", "visible")
>>> pairs[0].stem, pairs[0]["infrared"], pairs[0]["visible"]
('01', PosixPath('TNO/ir/01.png'), PosixPath('TNO/vi/01.png'))
```
"""

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File extensions taken as images (compared case-insensitively)."""

PathLike = str | os.PathLike


class UnmatchedFilesWarning(UserWarning):
    """Some images have no partner with the same stem in the other folders and were left out."""


@dataclass(frozen=True)
class Pair:
    """The files of one scene, one per folder.

    Args:
        stem (`str`): the file name without its extension, shared by all the files.
        paths (`dict[str, Path]`): folder name (e.g. `"infrared"`) -> the file in that folder.
    """

    stem: str
    paths: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]


@dataclass(frozen=True)
class PairMatching:
    """The result of [`scan_pairs`].

    Args:
        pairs (`list[Pair]`): the stems found in every folder, sorted by stem.
        unmatched (`dict[str, list[str]]`): folder name -> file names of that folder whose stem is missing from
            at least one other folder (empty lists where all files were matched).
    """

    pairs: list[Pair]
    unmatched: dict[str, list[str]]

    def describe_unmatched(self) -> str | None:
        """A message naming the unmatched files folder by folder, or `None` when every file was matched."""
        parts = [f"{name}: {', '.join(files)}" for name, files in self.unmatched.items() if files]
        if not parts:
            return None
        return "images without a partner of the same name were skipped (" + "; ".join(parts) + ")"


def default_names(count: int) -> Sequence[str]:
    """`("infrared", "visible")` for two folders; more folders must be named by the caller."""
    if count != 2:
        raise ValueError(f"Pass `names` for {count} folders (e.g. names=('fused', 'infrared', 'visible')).")
    return ("infrared", "visible")


def list_images(folder: PathLike, name: str = "image") -> dict[str, Path]:
    """The image files directly inside `folder`, keyed by stem.

    Args:
        folder (`str` or `os.PathLike`): the folder to list (not recursive).
        name (`str`): what the folder holds (e.g. `"infrared"`), used in error messages.

    Returns:
        `dict[str, Path]`: stem -> path, for files with one of `IMAGE_EXTENSIONS` (any case).

    Raises:
        FileNotFoundError: when `folder` does not exist or is not a folder.
        ValueError: when it holds no image file, or two images share a stem (e.g. `01.png` and `01.jpg`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"The {name} folder '{folder}' does not exist or is not a folder.")
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in images:
            raise ValueError(
                f"The {name} folder '{folder}' holds two images named '{path.stem}' ({images[path.stem].name} and "
                f"{path.name}); keep one, so that each scene has exactly one {name} image."
            )
        images[path.stem] = path
    if not images:
        raise ValueError(
            f"The {name} folder '{folder}' holds no images (expected files ending in {', '.join(IMAGE_EXTENSIONS)})."
        )
    return images


def scan_pairs(*folders: PathLike, names: Sequence[str] | None = None) -> PairMatching:
    """Match the images of `folders` by stem and collect the files left without partners.

    Args:
        folders (`str` or `os.PathLike`): two or more folders, one per modality.
        names (`Sequence[str]`, *optional*): a name per folder, the keys of [`Pair.paths`]; defaults to
            `("infrared", "visible")` for two folders.

    Returns:
        [`PairMatching`]: the pairs (sorted by stem) and the unmatched file names.

    Raises:
        FileNotFoundError / ValueError: see [`list_images`]; `ValueError` also when no stem is in every folder.
    """
    if len(folders) < 2:
        raise ValueError(f"Pass at least two folders to match, got {len(folders)}.")
    names = tuple(default_names(len(folders)) if names is None else names)
    if len(names) != len(folders):
        raise ValueError(f"Got {len(folders)} folders but {len(names)} names {names}; pass one name per folder.")
    listings = {name: list_images(folder, name) for name, folder in zip(names, folders)}
    common = set.intersection(*(set(listing) for listing in listings.values()))
    if not common:
        folders_text = ", ".join(f"{name} '{folder}'" for name, folder in zip(names, folders))
        raise ValueError(f"No image name is present in every folder ({folders_text}); pairs must share a file name.")
    pairs = [Pair(stem, {name: listing[stem] for name, listing in listings.items()}) for stem in sorted(common)]
    unmatched = {
        name: [path.name for stem, path in listing.items() if stem not in common] for name, listing in listings.items()
    }
    return PairMatching(pairs, unmatched)


def match_pairs(*folders: PathLike, names: Sequence[str] | None = None) -> list[Pair]:
    """Match the images of `folders` by stem, warning about the files left without partners.

    Same arguments as [`scan_pairs`]; files whose stem is not in every folder are named in an
    [`UnmatchedFilesWarning`] and left out.

    Returns:
        `list[Pair]`: one [`Pair`] per stem found in every folder, sorted by stem.
    """
    matching = scan_pairs(*folders, names=names)
    message = matching.describe_unmatched()
    if message:
        warnings.warn(message[0].upper() + message[1:], UnmatchedFilesWarning, stacklevel=2)
    return matching.pairs
