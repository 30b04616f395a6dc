"""How the `fsdiff` commands write files: never over an input, never half-written, and with errors that name the
argument at fault.

- [`check_spares_inputs`] refuses an output file that is an input file, and an output folder that is, or holds, an
  input (whatever `--overwrite` says);
- [`output_folder`] creates an output folder, or says which argument names a file where a folder must be;
- [`write_atomically`] writes to a temporary name in the same folder and renames it into place, so that an
  interrupted save (Ctrl-C, a full disk) leaves no file under the final name;
- [`is_finished`] tells a complete earlier output (skipped unless `--overwrite`) from a broken leftover (redone).
"""

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TypeVar

import PIL.Image

from .common import report

PARTIAL_MARK = ".partial-"
"""Temporary outputs are named `.<name>.partial-<pid><suffix>` beside their final name."""


def _same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file or folder (symbolic links, `..`, hard links and case-folding resolved)."""
    try:
        return first.exists() and second.exists() and os.path.samefile(first, second)
    except OSError:
        return first.resolve() == second.resolve()


def check_spares_inputs(argument: str, output: Path, inputs: Iterable[Path], folder: bool) -> None:
    """
    Refuse an output that would destroy an input, whatever `--overwrite` says.

    Args:
        argument (`str`): the option that named `output` (`-o`, `--out`, `--csv`, ...), for the message.
        output (`Path`): the output file, or the output folder when `folder` is true.
        inputs (`Iterable[Path]`): the input files and folders of the run.
        folder (`bool`): `output` is a folder: it may neither be an input folder nor hold an input file. An output
            file may not be an input file, nor an existing file inside an input folder.

    Raises:
        `ValueError`: naming the input that `output` would write over.
    """
    target = output.resolve()
    for source in inputs:
        resolved = source.resolve()
        if _same_file(output, source) or target == resolved:
            kind = "folder" if source.is_dir() else "file"
            raise ValueError(
                f"{argument} '{output}' is the input {kind} '{source}': writing there would replace the inputs. "
                f"Choose another {argument} {'folder' if folder else 'file'}."
            )
        if folder and target in resolved.parents:
            raise ValueError(
                f"{argument} '{output}' holds the input '{source}': outputs written there could replace inputs of "
                f"the same name. Choose an {argument} folder outside the input folders."
            )
        if not folder and output.is_file() and resolved in target.parents:
            raise ValueError(
                f"{argument} '{output}' is a file of the input folder '{source}': writing there would replace it. "
                f"Choose another {argument} file."
            )


def output_folder(argument: str, folder: Path) -> Path:
    """Create `folder` (and its parents) for the outputs of `argument`; a clear error where a file is in the way."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(
                f"{argument} '{folder}': '{parent}' is a file, not a folder; choose an {argument} path whose "
                "folders are folders."
            )
        if parent.exists():
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{argument} '{folder}': cannot create the folder ({error.strerror}).") from error
    return folder


def check_output_file(argument: str, path: Path) -> None:
    """An output file path must not be a folder, and its folder must exist or be creatable (it is created)."""
    if path.is_dir():
        raise ValueError(f"{argument} '{path}' is a folder; give a file name such as '{path / 'out'}{path.suffix}'.")
    output_folder(argument, path.parent)


def write_atomically(path: Path, save: Callable[[Path], None]) -> None:
    """
    `save(temporary)` writes the file under a temporary name beside `path` (same suffix, so that the format follows
    the extension); it is then renamed to `path` in one step. If `save` fails or is interrupted, the temporary file
    is removed and `path` is left as it was.
    """
    temporary = path.with_name(f".{path.stem}{PARTIAL_MARK}{os.getpid()}{path.suffix}")
    try:
        save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_image(image: PIL.Image.Image, path: Path, **options) -> None:
    """[`write_atomically`] for a PIL image; `options` go to `PIL.Image.Image.save` (JPEG quality, ...)."""
    image_format = PIL.Image.registered_extensions()[path.suffix.lower()]
    write_atomically(path, lambda temporary: image.save(temporary, format=image_format, **options))


def is_finished(path: Path) -> bool:
    """Whether `path` is an image that decodes completely (an earlier run's output); `False` for a missing file, an
    empty one, or one cut short by an interrupted save."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with PIL.Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError):
        return False
    return True


class Named(Protocol):
    """A pair as [`pending_pairs`] sees it: a [`~fsdiff_diffusers.pairing.Pair`], a `FuseJob`, ..."""

    @property
    def stem(self) -> str: ...


NamedPair = TypeVar("NamedPair", bound=Named)


def pending_pairs(pairs: Iterable[NamedPair], outputs: dict[str, Path], overwrite: bool) -> list[NamedPair]:
    """
    The pairs still to do: all with `overwrite`, else those whose output (`outputs[stem]`) is not [`is_finished`].
    Skipped pairs and broken leftovers (redone) are reported on stderr.
    """
    todo = []
    for pair in pairs:
        path = outputs[pair.stem]
        if not overwrite and is_finished(path):
            report(f"skipped {pair.stem}: {path} exists (pass --overwrite to replace it)")
            continue
        if not overwrite and path.exists():
            report(f"redoing {pair.stem}: {path} exists but is not a complete image (an interrupted run?)")
        todo.append(pair)
    return todo
