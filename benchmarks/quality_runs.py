"""Running `quality.py`'s methods: every method on every pair of the test split at every scale (`run_protocol`), and
on HKDnet's LR inputs against its published outputs (`run_hkdnet`)."""

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from fsdiff_diffusers import protocol
from fsdiff_diffusers.pairing import Pair, scan_pairs
from quality_data import DATA_DIR, HKDNET, load_sources
from quality_scores import (
    NO_REFERENCE,
    REFERENCE,
    Method,
    Scores,
    TargetCheck,
    is_fsdiff,
    mean_scores,
    score,
    target_check,
    timed,
)

HKDNET_SCALES = (2, 3, 4)
GRID_SCALE = 4
GRID_PAIRS = 3
"""The image grid of each dataset shows its first `GRID_PAIRS` test pairs at x`GRID_SCALE`."""


Grid = dict[str, dict[str, dict[str, np.ndarray]]]
"""dataset -> stem -> images: "infrared_lr", "visible_lr", then each method's output."""


@dataclass
class ProtocolResults:
    """What `run_protocol` measured.

    Args:
        means (`dict[tuple[str, int, str], Scores]`): (dataset, scale, method) -> mean scores over the pairs.
        seconds (`dict[tuple[str, int, str], float]`): (dataset, scale, method) -> mean seconds per image.
        grid (`Grid`): the images of the first `GRID_PAIRS` pairs of each dataset at `GRID_SCALE`.
    """

    means: dict[tuple[str, int, str], Scores]
    seconds: dict[tuple[str, int, str], float]
    grid: Grid

    def methods(self, dataset: str) -> list[str]:
        """The methods run on `dataset`, in the order they ran."""
        return list(dict.fromkeys(key[2] for key in self.means if key[0] == dataset))

    def scores(self, dataset: str, scale: int) -> dict[str, Scores]:
        return {method: self.means[dataset, scale, method] for method in self.methods(dataset)}

    def target_checks(self, scales: Sequence[int]) -> dict[tuple[str, int], TargetCheck]:
        """(dataset, scale) -> FS-Diff's target check, wherever FS-Diff ran."""
        checks = {}
        for dataset in dict.fromkeys(key[0] for key in self.means):
            methods = self.methods(dataset)
            baselines = [method for method in methods if not is_fsdiff(method)]
            for method in filter(is_fsdiff, methods):
                for scale in scales:
                    checks[dataset, scale] = target_check(self.scores(dataset, scale), method, baselines)
        return checks


def run_protocol(
    datasets: dict[str, list[Pair]],
    scales: Sequence[int],
    methods: dict[str, dict[str, Method]],
    crop: int | None = None,
) -> ProtocolResults:
    """Every method on every test pair at every scale.

    Args:
        datasets: dataset -> its test pairs. scales: the scales to run. methods: dataset -> the methods to run on it.
        crop: centre-crop the sources to `crop` x `crop` first (quick checks; `None` for the protocol).
    """
    rows, seconds, grid = defaultdict(list), defaultdict(list), defaultdict(dict)
    for dataset, pairs in datasets.items():
        for index, pair in enumerate(tqdm(pairs, desc=dataset, unit="pair", file=sys.stderr)):
            infrared, visible = load_sources(pair, crop)
            for scale in scales:
                example = protocol.make_pair(infrared, visible, scale)
                outputs = {}
                for name, method in methods[dataset].items():
                    outputs[name], elapsed = timed(method, example.infrared_lr, example.visible_lr, scale)
                    seconds[dataset, scale, name].append(elapsed)
                    rows[dataset, scale, name].append(score(outputs[name], example.infrared, example.visible))
                if scale == GRID_SCALE and index < GRID_PAIRS:
                    inputs = {"infrared_lr": example.infrared_lr, "visible_lr": example.visible_lr}
                    grid[dataset][pair.stem] = {**inputs, **outputs}
    return ProtocolResults(
        {key: mean_scores(values) for key, values in rows.items()},
        {key: float(np.mean(values)) for key, values in seconds.items()},
        dict(grid),
    )


def run_hkdnet(methods: dict[str, Method], limit: int | None) -> dict[tuple[int, str, str], Scores]:
    """HKDnet's outputs and our methods on HKDnet's LR inputs, scored without HR ground truth.

    Returns:
        (scale, method, reference) -> mean scores, `reference` being "same" (the LR inputs of that scale, upsampled
        bicubically: what every method was given) or "x2" (the x2 LR inputs resized bicubically to the output size,
        the sharpest sources that ship; only for scales above 2).
    """
    root = DATA_DIR / HKDNET
    rows = defaultdict(list)
    for scale in HKDNET_SCALES:
        folders = [root / f"lr_{scale}x" / "ir", root / f"lr_{scale}x" / "vi", root / f"out_{scale}x"]
        pairs = scan_pairs(*folders, names=("infrared", "visible", "HKDnet")).pairs[:limit]
        for pair in tqdm(pairs, desc=f"HKDnet x{scale}", unit="pair", file=sys.stderr):
            images = {name: protocol.load_grey(path, name) for name, path in pair.paths.items()}
            outputs = {"HKDnet": images["HKDnet"]}
            outputs.update(
                {name: method(images["infrared"], images["visible"], scale) for name, method in methods.items()}
            )
            references = {"same": [protocol.upscale(images[name], scale) for name in ("infrared", "visible")]}
            if scale > 2:
                sharpest = [root / "lr_2x" / name / pair["infrared"].name for name in ("ir", "vi")]
                size = images["HKDnet"].shape
                references["x2"] = [protocol.bicubic_resize(protocol.load_grey(path), size) for path in sharpest]
            for name, fused in outputs.items():
                for reference, sources in references.items():
                    rows[scale, name, reference].append(score(fused, *sources, names=NO_REFERENCE + REFERENCE))
    return {key: mean_scores(values) for key, values in rows.items()}
