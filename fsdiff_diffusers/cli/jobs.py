"""What `fsdiff fuse` fuses and where each result goes: one pair of files, the pairs of two folders, or the rows of a
`datasets` dataset, as [`FuseJob`]s (a stem, the output's name, and a function that loads the pair's images).

Every output is checked against the inputs first: an output file that is an input file, an output folder that is,
holds or lies in an input folder, or a dataset's image file, is refused whatever `--overwrite` says.
"""

import argparse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image

from ..pairing import Pair
from .common import check_one_size, load_pair, pair_folders, report
from .outputs import check_output_file, check_spares_inputs, output_folder

if TYPE_CHECKING:
    import datasets

OUTPUT_FORMATS = {".png": {}, ".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".tif": {}, ".tiff": {}}
"""Output file extensions `fsdiff fuse` writes, and the options PIL saves each with."""

FusionLoader = Callable[..., np.ndarray]
"""`loader(source, name, label=None)`: see [`loader_for_fusion`]."""


@dataclass(frozen=True)
class FuseJob:
    """
    One pair to fuse.

    Args:
        stem (`str`): the name of the pair in messages and of its output file (`<stem>.<format>` in a folder).
        load (`Callable[[], dict[str, np.ndarray]]`): loads the pair: `{"infrared": image, "visible": image}`, float32
            `(H, W, C)` arrays in `[0, 1]` of one `(H, W)`, `C` in {1, 3}; raises `OSError` / `ValueError` for an
            unreadable or mismatched pair.
    """

    stem: str
    load: Callable[[], dict[str, np.ndarray]]


def loader_for_fusion(chosen_range: str | tuple[float, float]) -> FusionLoader:
    """
    `loader(source, name, label=None)`: an image file (or an opened PIL image) as float32 `(H, W, C)` in `[0, 1]`, `C`
    in {1, 3}, an input of [`FSDiffPipeline`], its stored values mapped to black..white by `chosen_range`
    (`--input-range`); a range other than the file's whole container (12/14-bit or float data under `auto`, or an
    explicit one) is reported, naming the image by `label` (default: `source`).
    """
    from ..image_loading import is_container_range, load_image

    def load(source: Path | PIL.Image.Image, name: str, label: object = None) -> np.ndarray:
        image, (low, high) = load_image(source, name, input_range=chosen_range, return_range=True)
        if not is_container_range((low, high)):
            report(
                f"{source if label is None else label}: stored values {low:g}..{high:g} shown as black..white "
                f"(--input-range {chosen_range_text})"
            )
        return image.permute(1, 2, 0).numpy()

    chosen_range_text = chosen_range if isinstance(chosen_range, str) else ",".join(f"{v:g}" for v in chosen_range)
    return load


def fuse_jobs(args: argparse.Namespace) -> tuple[list[FuseJob], dict[str, Path]]:
    """
    The pairs of `--infrared` / `--visible` (two files or two folders) or of `--dataset_name` / `--dataset_path`, and
    the output file of each, by stem. An output that could replace an input is refused; the output folder is created.
    """
    loader = loader_for_fusion(args.input_range)
    dataset_given = args.dataset_name is not None or args.dataset_path is not None
    if dataset_given and (args.infrared is not None or args.visible is not None):
        raise ValueError("give --infrared and --visible, or a dataset (--dataset_name or --dataset_path), not both.")
    if dataset_given:
        return dataset_jobs(args, loader)
    missing = [f"--{name}" for name in ("infrared", "visible") if getattr(args, name) is None]
    if missing:
        raise ValueError(
            f"{' and '.join(missing)} missing: give --infrared and --visible (two files or two folders), or a "
            "dataset (--dataset_name or --dataset_path)."
        )
    infrared, visible = Path(args.infrared), Path(args.visible)
    for name, path in (("infrared", infrared), ("visible", visible)):
        if not path.exists():
            raise ValueError(f"the {name} path '{path}' does not exist.")
    if infrared.is_dir() != visible.is_dir():
        raise ValueError(
            f"--infrared '{infrared}' and --visible '{visible}' must be two image files or two folders, "
            "not one of each."
        )
    if infrared.is_dir():
        check_output_folder(args, (infrared, visible))
        pairs = pair_folders([infrared, visible], ("infrared", "visible"))
        output_folder("-o", args.out)
        jobs = [FuseJob(pair.stem, partial(load_pair, pair, loader)) for pair in pairs]
        return jobs, {pair.stem: args.out / f"{pair.stem}.{args.format}" for pair in pairs}
    if args.out.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(
            f"-o '{args.out}' must be an image file ending in {', '.join(OUTPUT_FORMATS)} when fusing one pair."
        )
    check_spares_inputs("-o", args.out, (infrared, visible), folder=False)
    check_output_file("-o", args.out)
    pair = Pair(f"{infrared.name} + {visible.name}", {"infrared": infrared, "visible": visible})
    return [FuseJob(pair.stem, partial(load_pair, pair, loader))], {pair.stem: args.out}


def check_output_folder(args: argparse.Namespace, inputs: tuple[Path, ...]) -> None:
    """`-o` must name a folder (one `<stem>.<format>` per pair) that is not, and does not hold, an input."""
    if args.out.suffix.lower() in OUTPUT_FORMATS or args.out.is_file():
        raise ValueError(
            f"-o '{args.out}' must be a folder when fusing folders or a dataset (it gets one <name>.{args.format})."
        )
    check_spares_inputs("-o", args.out, inputs, folder=True)


def dataset_jobs(args: argparse.Namespace, loader: FusionLoader) -> tuple[list[FuseJob], dict[str, Path]]:
    """
    One job per row of `--split` of `--dataset_name` / `--dataset_path`, named by `--name_column` (default: the row
    index, zero-padded to 5 digits) and loaded from `--infrared_column` and `--visible_column` only when it is fused.
    """
    from ..datasets_io import open_dataset, undecoded_columns

    folder = Path(args.dataset_path or args.dataset_name)
    if args.dataset_path is not None and not folder.is_dir():
        raise ValueError(f"--dataset_path '{folder}' is not a folder; give one written by save_to_disk.")
    if folder.is_dir() and folder.resolve() in args.out.resolve().parents:
        raise ValueError(
            f"-o '{args.out}' is inside the dataset folder '{folder}': outputs there could replace its images. "
            "Choose an -o folder outside it."
        )
    check_output_folder(args, (folder,) if folder.is_dir() else ())
    try:
        dataset = open_dataset(args.dataset_name, args.dataset_path, args.dataset_config_name, args.split)
    except ImportError as error:
        raise ValueError(str(error)) from error
    columns = {"infrared": args.infrared_column, "visible": args.visible_column}
    dataset = undecoded_columns(dataset, [*columns.values(), *filter(None, [args.name_column])])
    stems = row_stems(dataset, args.name_column)
    output_folder("-o", args.out)
    outputs = {stem: args.out / f"{stem}.{args.format}" for stem in stems}
    jobs = [
        FuseJob(stem, partial(load_row, dataset, index, columns, loader, outputs[stem]))
        for index, stem in enumerate(stems)
    ]
    return jobs, outputs


def row_stems(dataset: "datasets.Dataset", name_column: str | None) -> list[str]:
    """The output stem of every row: its `name_column` value (a file name, unique), or its index as `00042`."""
    if name_column is None:
        return [f"{index:05d}" for index in range(len(dataset))]
    stems = [str(value) for value in dataset[name_column]]
    for index, stem in enumerate(stems):
        if stem in ("", ".", "..") or Path(stem).name != stem:
            raise ValueError(
                f"--name_column {name_column}: row {index} holds '{stem}', which is not a file name; choose a column "
                "of plain names (no folders), or leave --name_column out to name the outputs by row."
            )
    repeated = sorted(stem for stem, count in Counter(stems).items() if count > 1)
    if repeated:
        raise ValueError(
            f"--name_column {name_column} holds the same name in several rows ({', '.join(repeated[:5])}); each "
            "output needs its own. Choose a column of unique names, or leave --name_column out."
        )
    return stems


def load_row(
    dataset: "datasets.Dataset", index: int, columns: dict[str, str], loader: FusionLoader, output: Path
) -> dict[str, np.ndarray]:
    """The images of row `index` (role -> `columns[role]`), each decoded with `loader`; refused when `output` is one of
    the row's image files."""
    from ..datasets_io import encoded, opened_image

    row = dataset[index]
    sources = {role: encoded(row[column]) for role, column in columns.items()}
    paths = [Path(source) for source in sources.values() if isinstance(source, str)]
    check_spares_inputs("-o", output, paths, folder=False)
    labels = {
        role: source if isinstance(source, str) else f"{columns[role]}[{index}]" for role, source in sources.items()
    }
    images = {}
    for role, source in sources.items():
        with opened_image(source, f"the {role} image of row {index}") as image:
            images[role] = loader(image, role, labels[role])
    return check_one_size(images, labels)
