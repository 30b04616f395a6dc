"""The figures of `quality.py`: a bar chart per scale and an image grid per dataset."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw

from quality_data import source_folders
from quality_runs import GRID_SCALE, ProtocolResults
from quality_scores import DESIGN_COLUMNS, Scores, best_baseline, is_fsdiff, labels, short

GRID_TILE = (256, 192)


def bar_charts(means: dict[tuple[str, int, str], Scores], scales: Sequence[int], figures_dir: Path) -> list[Path]:
    """One PNG per scale: a panel per DESIGN metric, a group of bars (one per method) per dataset (none where the
    method did not run on it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(key[0] for key in means))
    methods = list(dict.fromkeys(key[2] for key in means))
    paths = []
    for scale in scales:
        figure, axes = plt.subplots(2, 5, figsize=(15, 5.5))
        width = 0.8 / len(methods)
        for axis, metric, title in zip(axes.flat, DESIGN_COLUMNS, labels(DESIGN_COLUMNS)):
            for index, method in enumerate(methods):
                values = [means.get((dataset, scale, method), {}).get(metric, np.nan) for dataset in datasets]
                axis.bar(np.arange(len(datasets)) + index * width, values, width, label=method)
            axis.set_title(title)
            axis.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2)
            axis.set_xticklabels([dataset.replace("Harvard_", "") for dataset in datasets], rotation=30, fontsize=7)
        figure.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper right", ncol=len(methods), fontsize=8)
        figure.suptitle(f"x{scale}: mean over the test pairs of each dataset (VIFB convention)", x=0.01, ha="left")
        figure.tight_layout(rect=(0, 0, 1, 0.96))
        paths.append(figures_dir / f"quality_x{scale}.png")
        figure.savefig(paths[-1], dpi=60)
        plt.close(figure)
    return paths


def tile(image: np.ndarray, label: str, size: tuple[int, int] | None = None) -> PIL.Image.Image:
    """`image` (first resized to `size` = (height, width) with nearest neighbours, when given) shrunk to fit
    `GRID_TILE`, centred on black, with `label` above it."""
    width, height = GRID_TILE
    picture = PIL.Image.fromarray(image)
    if size is not None:
        picture = picture.resize(size[::-1], PIL.Image.Resampling.NEAREST)
    picture.thumbnail((width, height), PIL.Image.Resampling.LANCZOS)
    canvas = PIL.Image.new("L", (width, height + 14))
    canvas.paste(picture, ((width - picture.width) // 2, 14 + (height - picture.height) // 2))
    PIL.ImageDraw.Draw(canvas).text((2, 1), label, fill=255)
    return canvas


def grid_row(dataset: str, stem: str, images: dict[str, np.ndarray], methods: Sequence[str]) -> list[PIL.Image.Image]:
    """One pair of a grid: its two LR inputs (nearest-neighbour upsampled to the output size), then `methods`."""
    first, second = (folder.name for folder in source_folders(dataset))
    size = images[methods[0]].shape
    return [
        tile(images["infrared_lr"], f"{stem} LR {first} x{GRID_SCALE}", size),
        tile(images["visible_lr"], f"LR {second}", size),
        *(tile(images[method], short(method)) for method in methods),
    ]


def image_grids(measured: ProtocolResults, figures_dir: Path) -> dict[str, tuple[Path, str]]:
    """One PNG per dataset: a row per grid pair with its LR inputs, the best baseline at `GRID_SCALE` (the one best
    on the most of `TARGET_METRICS`) and FS-Diff where it ran.

    Returns:
        dataset -> (the PNG, the best baseline's name).
    """
    paths = {}
    for dataset, pairs in measured.grid.items():
        scores = measured.scores(dataset, GRID_SCALE)
        baselines = [method for method in scores if not is_fsdiff(method)]
        best = best_baseline(scores, baselines)
        methods = [best, *filter(is_fsdiff, scores)]
        rows = [grid_row(dataset, stem, images, methods) for stem, images in pairs.items()]
        width, height = rows[0][0].size
        canvas = PIL.Image.new("L", (width * len(rows[0]), height * len(rows)))
        for row_index, row in enumerate(rows):
            for column, picture in enumerate(row):
                canvas.paste(picture, (column * width, row_index * height))
        paths[dataset] = figures_dir / f"quality_grid_x{GRID_SCALE}_{dataset}.png", best
        canvas.save(paths[dataset][0], optimize=True)
    return paths
