"""What the `fsdiff` subcommands share: exit codes, pairing folders, running a function over every pair while naming
the ones that fail, and the argparse types of their common options."""

import argparse
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm.auto import tqdm

from ..pairing import Pair, scan_pairs

Result = TypeVar("Result")
Loader = Callable[[Path, str], np.ndarray]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PAIR_ERRORS = (OSError, ValueError, MemoryError, RuntimeError)
"""What fails one pair only (an unreadable file, a bad size, running out of memory, ...); the others go on."""


def report(message: str) -> None:
    """Print `message` to stderr without breaking a progress bar."""
    tqdm.write(message, file=sys.stderr)


def pair_folders(folders: Sequence[str], names: Sequence[str]) -> list[Pair]:
    """Pairs the images of `folders` by stem, reporting the files without partners on stderr."""
    matching = scan_pairs(*folders, names=names)
    unmatched = matching.describe_unmatched()
    if unmatched:
        report(f"warning: {unmatched}")
    return matching.pairs


def load_pair(pair: Pair, loader: Loader) -> dict[str, np.ndarray]:
    """Loads every file of `pair` with `loader(path, name)` and checks they all have one size."""
    return check_one_size({name: loader(path, name) for name, path in pair.paths.items()}, pair.paths)


def check_one_size(images: dict[str, np.ndarray], sources: Mapping[str, object]) -> dict[str, np.ndarray]:
    """
    `images` (name -> `(H, W, ...)` array) when they all have one `(H, W)`; else a `ValueError` that names each image
    by its source (`sources[name]`: a path, or the cell of a dataset) and gives both sizes.
    """
    first = next(iter(images))
    height, width = images[first].shape[:2]
    for name, image in images.items():
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"the {name} image '{sources[name]}' is {image.shape[0]}x{image.shape[1]} but the {first} image "
                f"'{sources[first]}' is {height}x{width} (H x W); the images of one scene must have one size."
            )
    return images


def describe_failure(error: Exception) -> str:
    """The message a failed pair is reported with: the error's own, or for running out of memory what to do."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, MemoryError) or "allocate" in message:
        return f"not enough memory for this pair ({message}); make the output smaller (--scale, --size)"
    return message


def process_pairs(
    pairs: Sequence[Pair], function: Callable[[Pair], Result], description: str
) -> tuple[dict[str, Result], dict[str, str]]:
    """Calls `function(pair)` on every pair with a progress bar; an error of one pair (unreadable file, bad size,
    out of memory, ...) fails that pair only.

    Returns:
        `(results, failures)`: stem -> result of the pairs that worked, stem -> error message of the others
        (each also printed on stderr as it happens).
    """
    results, failures = {}, {}
    for pair in tqdm(pairs, desc=description, unit="pair", disable=None, file=sys.stderr):
        try:
            results[pair.stem] = function(pair)
        except PAIR_ERRORS as error:
            fail(pair.stem, error, failures)
    return results, failures


def fail(stem: str, error: Exception, failures: dict[str, str]) -> None:
    """Records in `failures` that the pair `stem` failed with `error`, and says so on stderr."""
    failures[stem] = describe_failure(error)
    report(f"error: {stem}: {failures[stem]}")


def finish(total: int, failures: dict[str, str], label: str = "") -> int:
    """Prints how many pairs failed (if any, after `label`, such as "[rank 1/2] ") and returns the exit status."""
    if not failures:
        return EXIT_OK
    report(f"{label}{len(failures)} of {total} pairs failed: {', '.join(failures)}")
    return EXIT_FAILED


def finite_number(text: str) -> float:
    """`text` as a float, or an argparse error when it is not a finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def scale_factor(text: str) -> float:
    """argparse type of `--scale`: a number >= 1."""
    value = finite_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1; the scale is an upscaling factor such as 2, 4 or 2.5")
    return value


def image_size(text: str) -> tuple[int, int]:
    """argparse type of `--size`: `WIDTHxHEIGHT` in pixels, e.g. `640x480`, returned as `(width, height)`."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in pixels written WIDTHxHEIGHT, such as 640x480")
    return int(width), int(height)


def positive_int(text: str) -> int:
    """argparse type of `--steps`: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def non_negative_int(text: str) -> int:
    """argparse type of `--tile-overlap`: an integer >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return int(text)
