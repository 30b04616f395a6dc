"""Fusion + super-resolution quality on the held-out test pairs: bicubic + classical fusion baselines (and FS-Diff,
when `--pipeline` is given) at x2, x4 and x8, and HKDnet's published outputs against the same baselines.

Usage:
    python benchmarks/quality.py [--datasets TNO MSRS ...] [--scales 2 4 8] [--methods mean max laplacian gff]
                                 [--pipeline default|PATH [--steps N] [--scheduler CLASS] [--pipeline_datasets ...]]
                                 [--threads N] [--device cpu] [--dtype float32] [--limit N] [--crop N]
                                 [--no-write | --results PATH --figures_dir PATH]

Protocol (`fsdiff_diffusers.protocol`): sources to 8-bit grey, top-left crop to a multiple of the scale (HR), PIL
bicubic downscale (LR); each method turns the LR pair into an HR-size image, rounded to 8 bits, scored with every
metric of `fsdiff_diffusers.metrics` (VIFB convention) against the HR sources.

FS-Diff appears as one method ("FS-Diff (N steps)") whichever model produced it. `--pipeline default` runs each
dataset with the shipped model of its modality: `fsdiff_diffusers.IR_VIS_MODEL` on the infrared-visible sets (TNO,
MSRS, LLVIP, HKDnet_peer), `fsdiff_diffusers.MEDICAL_MODEL` on the Harvard sets (MRI as `infrared=`, CT / PET /
SPECT as `visible=`); `--pipeline_datasets` then defaults to every dataset whose model is there (a folder with a
model_index.json), and a dataset whose model is missing shows the baselines only, the section saying why. Each
model is loaded once, and only when one of its datasets runs. `--pipeline PATH` runs that one pipeline on
`--pipeline_datasets` (default: the infrared-visible test sets TNO, MSRS, LLVIP). Each table also gives the
seconds per image of every method, and for FS-Diff a target check: on how many of EN, SD, SF, AG, MI, SCD, VIF,
Qabf, SSIM it beats the best baseline (the issue's target: at least 6 of 9 on TNO x4), and apart from that count
whether its Q_ir and Q_vi (Qabf's per-source terms) are each at least the best baseline's. Writes the "quality"
section of RESULTS.md, a bar chart per scale and an image grid per dataset (LR inputs, the best baseline, FS-Diff
at x4) under benchmarks/figures/ (unless --no-write).

The full report: `python benchmarks/quality.py --pipeline default`.
"""

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import results  # noqa: E402
from fsdiff_diffusers import IR_VIS_MODEL, MEDICAL_MODEL, loading, metrics, protocol  # noqa: E402
from fsdiff_diffusers.fusion import FUSION_METHODS  # noqa: E402
from fsdiff_diffusers.loading import DTYPES  # noqa: E402
from fsdiff_diffusers.pairing import Pair, scan_pairs  # noqa: E402
from results import machine_description, markdown_table  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
FIGURES_DIR = Path(__file__).with_name("figures")
HKDNET = "HKDnet_peer"
SCALES = (2, 4, 8)
HKDNET_SCALES = (2, 3, 4)
GRID_SCALE = 4
GRID_PAIRS = 3
"""The image grid of each dataset shows its first `GRID_PAIRS` test pairs at x`GRID_SCALE`."""
GRID_TILE = (256, 192)
PIPELINE_DATASETS = ("TNO", "MSRS", "LLVIP")
"""Where `--pipeline PATH` runs by default: the infrared-visible test sets."""
INFRARED_VISIBLE, MEDICAL = "infrared_visible", "medical"
"""The modalities: the groups of `splits.json` (HKDnet_peer's pairs are infrared-visible)."""
COLUMNS = [*metrics.METRICS, "PSNR-MSE"]
"""Every metric (VIFB convention; "PSNR" in VIFB's form), then PSNR in the usual 10 log10(255^2 / MSE) form."""
NO_REFERENCE = ["EN", "SD", "SF", "AG"]
REFERENCE = ["MI", "SCD", "VIF", "Qabf", "Q_ir", "Q_vi", "SSIM", "CC", "PSNR-MSE"]
LEAD_METRICS = ["Qabf", "SCD"]
"""The metrics hardest to game (DESIGN.md): each table names the method with the highest value of each."""
DESIGN_COLUMNS = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR-MSE"]
DESIGN_TNO_X4 = {  # /work/shared/DESIGN.md, "Reference numbers: TNO test set, x4"
    "mean": [6.173, 25.30, 3.00, 1.36, 1.375, 1.462, 0.365, 0.133, 1.347, 16.28],
    "max": [6.819, 39.17, 4.57, 1.98, 2.110, 1.463, 0.435, 0.207, 1.279, 13.41],
    "laplacian": [6.734, 31.42, 5.73, 2.57, 1.136, 1.504, 0.417, 0.209, 1.306, 15.89],
}
TOLERANCE = 0.005  # the baselines should reproduce DESIGN's rows to 0.5 %
TARGET_METRICS = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM"]
"""The metrics of the issue's quality target, all higher-is-better."""
TARGET_WINS = 6
"""The target: FS-Diff beats the best baseline on at least this many of `TARGET_METRICS` ..."""
TARGET_CASE = ("TNO", 4)
"""... on this (dataset, scale)."""
EDGE_METRICS = ["Q_ir", "Q_vi"]
"""Qabf's per-source terms: the target also asks FS-Diff's each to be at least the best baseline's (a tie
counts). Checked on their own, not among the wins."""

Method = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
"""`(infrared_lr, visible_lr, scale) -> fused` on uint8 `(h, w)` arrays; the result is uint8 at the scaled size."""
Scores = dict[str, float]


# ----------------------------------------------------------------------------- data
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


# ----------------------------------------------------------------------------- methods and scoring
def baseline_name(method: str) -> str:
    return f"bicubic + {method}"


def short(method: str) -> str:
    """A method's name for tight spaces: "bicubic + gff" -> "bic+gff"."""
    return method.replace("bicubic + ", "bic+")


def is_fsdiff(method: str) -> bool:
    return method.startswith("FS-Diff")


def load_pipeline(path: str, scheduler: str | None = None, device: str = "cpu", dtype: str = "float32"):
    """[`fsdiff_diffusers.loading.load_pipeline`] with progress bars off; "default" is the shipped model
    (`fsdiff_diffusers.DEFAULT_MODEL`), `scheduler` a Diffusers class name or alias."""
    from fsdiff_diffusers import DEFAULT_MODEL

    pipe = loading.load_pipeline(DEFAULT_MODEL if path == "default" else path, device, dtype, scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fsdiff_method(pipe, steps: int, seed: int = 0) -> Method:
    """Fusion of an LR pair with `pipe` (an `FSDiffPipeline`) in `steps` steps, from the noise of `seed`."""

    def run(infrared_lr: np.ndarray, visible_lr: np.ndarray, scale: float) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)
        output = pipe(
            infrared_lr, visible_lr, scale=scale, num_inference_steps=steps, generator=generator, output_type="np"
        )
        return protocol.to_uint8(output.images[0, ..., 0])

    return run


def fsdiff_name(steps: int, scheduler: str | None = None) -> str:
    return f"FS-Diff ({scheduler.replace('Scheduler', '') + ', ' if scheduler else ''}{steps} steps)"


def shipped_models() -> dict[str, tuple[str, str]]:
    """Modality -> (how the report names the shipped model of it, its folder). Read when called, so that the
    module's `IR_VIS_MODEL` / `MEDICAL_MODEL` can be pointed elsewhere (tests)."""
    return {
        INFRARED_VISIBLE: ("`fsdiff_diffusers.IR_VIS_MODEL` (the shipped infrared-visible model)", IR_VIS_MODEL),
        MEDICAL: (
            "`fsdiff_diffusers.MEDICAL_MODEL` (the shipped medical model: MRI as `infrared=`, CT / PET / SPECT as "
            "`visible=`)",
            MEDICAL_MODEL,
        ),
    }


def model_present(path: str) -> bool:
    """Whether the folder `path` holds a saved pipeline (a model_index.json)."""
    return (Path(path) / "model_index.json").is_file()


def display_path(path: str) -> str:
    """`path` relative to the repository when it lies inside it (as the report shows it)."""
    root = Path(__file__).resolve().parents[1]
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


@dataclass
class FSDiffModel:
    """One FS-Diff model of a report and where it runs.

    Args:
        label (`str`): how the report names it. path (`str`): its folder or Hub id, for `load_pipeline`.
        datasets (`list[str]`): the datasets (out of `--datasets`) it runs on.
        missing (`str`): why it cannot run ("" when it can); its datasets then show the baselines only.
    """

    label: str
    path: str
    datasets: list[str]
    missing: str = ""

    def runs(self) -> bool:
        """Whether it runs anywhere (it is there, and one of its datasets was asked for)."""
        return bool(self.datasets) and not self.missing


@dataclass
class FSDiffPlan:
    """Which model runs FS-Diff on which dataset (`plan_fsdiff`).

    Args:
        models (`list[FSDiffModel]`): the models, each with its datasets.
        baselines_only (`dict[str, str]`): dataset (out of `--datasets`) -> why FS-Diff does not run on it.
    """

    models: list[FSDiffModel] = field(default_factory=list)
    baselines_only: dict[str, str] = field(default_factory=dict)

    def model_of(self, dataset: str) -> FSDiffModel | None:
        """The model that runs on `dataset` (`None`: baselines only)."""
        return next((model for model in self.models if model.runs() and dataset in model.datasets), None)

    def rows_text(self, dataset: str, method: str) -> str:
        """One sentence for the tables of `dataset`: which rows are FS-Diff and which model made them ("" without
        `--pipeline`)."""
        if not self.models:
            return ""
        model = self.model_of(dataset)
        if model is None:
            return f"No FS-Diff rows here: {self.baselines_only.get(dataset, 'FS-Diff did not run on it')}."
        return f'The rows "{method}" are FS-Diff: {model.label}.'


def plan_fsdiff(args: argparse.Namespace) -> FSDiffPlan:
    """Which model runs on which of `args.datasets`: none without `--pipeline`; `--pipeline default` the shipped model
    of each dataset's modality (where its folder holds a model_index.json); `--pipeline PATH` that one pipeline. Either
    way only on `args.pipeline_datasets`."""
    if not args.pipeline:
        return FSDiffPlan()
    wanted = [dataset for dataset in args.datasets if dataset in args.pipeline_datasets]
    not_listed = "not in `--pipeline_datasets` (add it there to run FS-Diff on it)"
    plan = FSDiffPlan()
    if args.pipeline != "default":
        plan.models.append(FSDiffModel(f"`{args.pipeline}`", args.pipeline, wanted))
        plan.baselines_only = {dataset: not_listed for dataset in args.datasets if dataset not in wanted}
        return plan
    modality = modalities()
    for group, (label, path) in shipped_models().items():
        own = [dataset for dataset in args.datasets if modality[dataset] == group]
        if not own:
            continue
        missing = (
            ""
            if model_present(path)
            else f"{label} is not in this checkout (no model_index.json in `{display_path(path)}`)"
        )
        plan.models.append(FSDiffModel(label, path, [d for d in own if d in wanted], missing))
        for dataset in own:
            if missing:
                plan.baselines_only[dataset] = missing
            elif dataset not in wanted:
                plan.baselines_only[dataset] = not_listed
    return plan


def build_methods(args: argparse.Namespace, plan: FSDiffPlan, datasets: Sequence[str]) -> dict[str, dict[str, Method]]:
    """Dataset -> the methods to run on it: the baselines of `--methods`, then FS-Diff where `plan` runs a model on
    it, all under one name (`fsdiff_name`). Each model is loaded once, and only when one of its datasets is in
    `datasets`."""
    baselines = {baseline_name(name): partial(protocol.bicubic_fusion_baseline, method=name) for name in args.methods}
    methods = {dataset: dict(baselines) for dataset in datasets}
    for model in plan.models:
        running = [dataset for dataset in model.datasets if dataset in methods]
        if model.missing or not running:
            continue
        pipe = load_pipeline(model.path, args.scheduler, args.device, args.dtype)
        for dataset in running:
            methods[dataset][fsdiff_name(args.steps, args.scheduler)] = fsdiff_method(pipe, args.steps)
    return methods


def score(fused: np.ndarray, infrared: np.ndarray, visible: np.ndarray, names: Sequence[str] = COLUMNS) -> Scores:
    """`metrics.evaluate` (VIFB convention) plus PSNR in the MSE form, for the `names` out of `COLUMNS`."""
    scores = metrics.evaluate(fused, infrared, visible, [name for name in names if name in metrics.METRICS])
    if "PSNR-MSE" in names:
        scores["PSNR-MSE"] = metrics.psnr(fused, infrared, visible, form="mse")
    return scores


def mean_scores(rows: Sequence[Scores]) -> Scores:
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}


def timed(method: Method, *args) -> tuple[np.ndarray, float]:
    """`method(*args)` and its wall time in seconds."""
    start = time.perf_counter()
    fused = method(*args)
    return fused, time.perf_counter() - start


# ----------------------------------------------------------------------------- target check and best baseline
def beats(value: float, other: float, name: str) -> bool:
    """Whether `value` of metric `name` is strictly better than `other` (lower for Nabf, higher for the rest)."""
    return value > other if metrics.HIGHER_IS_BETTER.get(name, True) else value < other


def best_baselines(scores: dict[str, Scores], baselines: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """Metric -> the baseline with the best value of it (the first one on ties), out of `scores` (method -> scores)."""
    best = {}
    for name in names:
        best[name] = baselines[0]
        for method in baselines[1:]:
            if beats(scores[method][name], scores[best[name]][name], name):
                best[name] = method
    return best


def best_baseline(scores: dict[str, Scores], baselines: Sequence[str], names: Sequence[str] = TARGET_METRICS) -> str:
    """The baseline that is best on the most of `names` (the first one in `baselines` on ties)."""
    winners = list(best_baselines(scores, baselines, names).values())
    return max(baselines, key=winners.count)


@dataclass
class TargetCheck:
    """FS-Diff against the best baseline of each metric, on one dataset and scale.

    Args:
        method (`str`): the FS-Diff method's name. required (`int`): wins needed to pass.
        values (`dict[str, float]`): FS-Diff's mean of each metric of `best` and `edges`.
        best (`dict[str, tuple[str, float]]`): metric -> (the best baseline, its value), for the wins.
        edges (`dict[str, tuple[str, float]]`): the same for the metrics FS-Diff only has to match (`EDGE_METRICS`),
            checked apart from the wins.
    """

    method: str
    values: dict[str, float]
    best: dict[str, tuple[str, float]]
    required: int = TARGET_WINS
    edges: dict[str, tuple[str, float]] = field(default_factory=dict)
    wins: list[str] = field(init=False)
    matched: list[str] = field(init=False)

    def __post_init__(self):
        self.wins = [name for name, (_, value) in self.best.items() if beats(self.values[name], value, name)]
        self.matched = [name for name, (_, value) in self.edges.items() if not beats(value, self.values[name], name)]

    @property
    def passed(self) -> bool:
        return len(self.wins) >= self.required

    @property
    def edges_matched(self) -> bool:
        """Whether FS-Diff is at least the best baseline on every metric of `edges`."""
        return len(self.matched) == len(self.edges)

    def summary(self) -> str:
        """E.g. "MISS: 4 of 9 (needs 6): wins EN, SD, SF, AG"."""
        verdict = "PASS" if self.passed else "MISS"
        return (
            f"{verdict}: {len(self.wins)} of {len(self.best)} (needs {self.required}): "
            f"wins {', '.join(self.wins) or 'none'}"
        )

    def details(self) -> str:
        """Every metric as "name FS-Diff value vs best baseline value (baseline)", a win marked ">", a loss "<="."""
        return "; ".join(
            f"{name} {self.values[name]:.4g} {'>' if name in self.wins else '<='} {value:.4g} ({short(method)})"
            for name, (method, value) in self.best.items()
        )

    def edge_summary(self) -> str:
        """E.g. "Q_ir and Q_vi each at least the best baseline's: MISS: Q_ir 0.2 < 0.25 (bic+max); Q_vi 0.3 >= 0.3
        (bic+gff)"."""
        verdict = "PASS" if self.edges_matched else "MISS"
        details = "; ".join(
            f"{name} {self.values[name]:.4g} {'>=' if name in self.matched else '<'} {value:.4g} ({short(method)})"
            for name, (method, value) in self.edges.items()
        )
        return f"{' and '.join(self.edges)} each at least the best baseline's: {verdict}: {details}"


def target_check(
    scores: dict[str, Scores],
    method: str,
    baselines: Sequence[str],
    names: Sequence[str] = TARGET_METRICS,
    required: int = TARGET_WINS,
    edge_names: Sequence[str] = EDGE_METRICS,
) -> TargetCheck:
    """`method` (FS-Diff) against the best of `baselines` on each of `names` (the wins) and of `edge_names` (to
    match), from `scores` (method -> scores)."""
    best = {n: (b, scores[b][n]) for n, b in best_baselines(scores, baselines, [*names, *edge_names]).items()}
    return TargetCheck(
        method,
        {name: scores[method][name] for name in best},
        {name: best[name] for name in names},
        required,
        {name: best[name] for name in edge_names},
    )


# ----------------------------------------------------------------------------- the protocol on the test split
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


# ----------------------------------------------------------------------------- HKDnet's outputs
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


# ----------------------------------------------------------------------------- figures
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


# ----------------------------------------------------------------------------- RESULTS.md
def cells(scores: Scores, names: Sequence[str]) -> list[str]:
    return [f"{scores[name]:.4g}" for name in names]


def labels(names: Sequence[str]) -> list[str]:
    """Column headers: the metric names, with the two PSNR forms spelled out."""
    return [{"PSNR": "PSNR (VIFB)", "PSNR-MSE": "PSNR (MSE)"}.get(name, name) for name in names]


def leaders(scores: dict[str, Scores]) -> str:
    """The method with the highest value of each of `LEAD_METRICS`, out of `scores` (method -> scores)."""
    best = {name: max(scores, key=lambda method: scores[method][name]) for name in LEAD_METRICS}
    return ", ".join(f"{name} {method} ({scores[method][name]:.4g})" for name, method in best.items())


def versus(value: float, best: tuple[str, float], bold: bool) -> str:
    """A target table cell: "FS-Diff's value vs the best baseline's (that baseline)", FS-Diff's in bold if `bold`."""
    method, reference = best
    return f"{'**' * bold}{value:.4g}{'**' * bold} vs {reference:.4g} ({short(method)})"


def target_table(checks: dict[tuple[str, int], TargetCheck], dataset: str, scales: Sequence[int]) -> str:
    """FS-Diff against the best baseline of each target metric and of `EDGE_METRICS`, a row per scale of `dataset`
    ("" without FS-Diff)."""
    rows = [
        [f"x{scale}", f"{len(check.wins)} / {len(check.best)}"]
        + [versus(check.values[name], best, name in check.wins) for name, best in check.best.items()]
        + [versus(check.values[name], best, name in check.matched) for name, best in check.edges.items()]
        + ["yes" if check.edges_matched else "no"]
        for scale in scales
        if (check := checks.get((dataset, scale)))
    ]
    if not rows:
        return ""
    edges = " and ".join(EDGE_METRICS)
    table = markdown_table(["scale", "wins", *TARGET_METRICS, *EDGE_METRICS, f"{edges} at least best"], rows)
    return (
        f"FS-Diff against the best baseline of each metric (bold: FS-Diff is better; for {edges}, which are not "
        "among the wins, at least as good):\n\n" + table
    )


def target_line(checks: dict[tuple[str, int], TargetCheck]) -> str:
    """The issue's target, on `TARGET_CASE`, as one line with the numbers ("" when it was not run)."""
    dataset, scale = TARGET_CASE
    if TARGET_CASE not in checks:
        return ""
    check = checks[TARGET_CASE]
    return (
        f"**Target check ({dataset} x{scale}: FS-Diff beats the best baseline on at least {check.required} of "
        f"{', '.join(check.best)}): {check.summary()}.** Per metric (FS-Diff vs the best baseline): "
        f"{check.details()}. **{check.edge_summary()}.**"
    )


def dataset_tables(
    measured: ProtocolResults,
    pair_counts: dict[str, int],
    scales: Sequence[int],
    grids: dict[str, tuple[Path, str]],
    plan: FSDiffPlan | None = None,
    method: str = "FS-Diff",
) -> str:
    """A table per dataset (a row per scale and method), what its rows are, its target check and its image grid."""
    headers = ["scale", "method", *labels(COLUMNS), "s/image"]
    checks = measured.target_checks(scales)
    parts = []
    for dataset, count in pair_counts.items():
        methods = measured.methods(dataset)
        rows = [
            [f"x{scale}", method, *cells(measured.means[dataset, scale, method], COLUMNS)]
            + [f"{measured.seconds[dataset, scale, method]:.3g}"]
            for scale in scales
            for method in methods
        ]
        best = [f"x{scale}: {leaders(measured.scores(dataset, scale))}" for scale in scales]
        rows_text = (plan or FSDiffPlan()).rows_text(dataset, method)
        parts.append(
            f"### {dataset} ({count} test pair{'s' * (count != 1)})\n\n"
            + (f'{rows_text} The rows "bicubic + X" are the baselines.\n\n' if rows_text else "")
            + f"{markdown_table(headers, rows)}\n\nHighest {' / '.join(LEAD_METRICS)}: "
            + "; ".join(best)
            + "."
        )
        parts.append(target_table(checks, dataset, scales))
        if dataset in grids:
            path, baseline = grids[dataset]
            parts.append(
                f"x{GRID_SCALE}, first {len(measured.grid[dataset])} test pair(s): LR inputs (nearest-neighbour "
                f"upsampled), the best baseline ({baseline}: best on the most of the {len(TARGET_METRICS)} target "
                f"metrics at x{GRID_SCALE}){', FS-Diff' if any(map(is_fsdiff, methods)) else ''}.\n\n"
                f"![{dataset} x{GRID_SCALE}]({path})"
            )
    return "\n\n".join(part for part in parts if part)


def reference_check(means) -> str:
    """TNO x4 baseline rows against DESIGN.md's, cell by cell (ours, then the relative difference)."""
    rows, misses = [], []
    for method, reference in DESIGN_TNO_X4.items():
        key = ("TNO", 4, baseline_name(method))
        if key not in means:
            continue
        ours = [means[key][name] for name in DESIGN_COLUMNS]
        differences = [value / expected - 1 for value, expected in zip(ours, reference)]
        rows.append([method] + [f"{value:.4g} ({100 * d:+.1f} %)" for value, d in zip(ours, differences)])
        worst = max(abs(d) for d in differences)
        if worst > TOLERANCE:
            misses.append(f"{method} (up to {100 * worst:.1f} %)")
    if not rows:
        return ""
    verdict = "all cells within 0.5 %" if not misses else "outside 0.5 %: " + ", ".join(misses)
    return (
        "### TNO x4 against DESIGN.md's reference rows\n\nOur value (relative difference to the DESIGN table); "
        f"{verdict}.\n\n"
        + markdown_table(["method", *labels(DESIGN_COLUMNS)], rows)
        + ("\n\n" + LAPLACIAN_NOTE if any(m.startswith("laplacian") for m in misses) else "")
    )


LAPLACIAN_NOTE = """\
The Laplacian row differs because of the border rule of the pyramid's EXPAND step. The reference pyramid
mirrors with the edge sample repeated (half-sample symmetric: `d c b a | a b c d`, `scipy.ndimage` mode
"reflect", numpy "symmetric"); `fsdiff_diffusers.fusion.pyramid` mirrors without repeating it (`c b | a b c`,
torch "reflect", OpenCV's default). A numpy re-implementation with symmetric borders reproduces every cell of
the DESIGN row within 0.1 %; symmetric borders in REDUCE alone change nothing (< 0.2 %), in EXPAND alone they
give the full match. Other variants tried, all further off: 3 or 5 levels, bilinear EXPAND, DoG bands from the
undecimated blur (scikit-image style), fusing on unclamped 0..255 floats, OpenCV pyrDown / pyrUp in float32
and in saturating uint8."""


def hkdnet_table(results, methods: Sequence[str], scale: int, reference: str, names: Sequence[str]) -> str:
    """One scale and reference of `run_hkdnet`'s results: a row per method, then the leaders."""
    scores = {method: results[scale, method, reference] for method in ["HKDnet", *methods]}
    rows = [[method, *cells(values, names)] for method, values in scores.items()]
    title = f"x{scale} LR inputs upsampled" if reference == "same" else "x2 LR inputs resized to the output size"
    return (
        f"**x{scale}**, against the {title}\n\n{markdown_table(['method', *labels(names)], rows)}\n\n"
        f"Highest {' / '.join(LEAD_METRICS)}: {leaders(scores)}."
    )


def hkdnet_rows_text(methods: Sequence[str], plan: FSDiffPlan, method: str) -> str:
    """What the rows of the HKDnet tables are: HKDnet's outputs, our baselines, FS-Diff (which model) or why not."""
    baselines = ", ".join(f'"{name}"' for name in methods if not is_fsdiff(name))
    text = f'Rows: "HKDnet" is HKDnet\'s published outputs; {baselines} are our bicubic baselines'
    if method in methods:
        return text + f'; the rows "{method}" are FS-Diff: {plan.model_of(HKDNET).label}, on the same LR inputs.'
    reason = plan.baselines_only.get(HKDNET) if plan.models else "run with `--pipeline default` to add it"
    return text + f". No FS-Diff rows: {reason}."


def hkdnet_tables(results, methods: Sequence[str]) -> str:
    tables = [hkdnet_table(results, methods, scale, "same", NO_REFERENCE + REFERENCE) for scale in HKDNET_SCALES]
    tables += [hkdnet_table(results, methods, scale, "x2", REFERENCE) for scale in HKDNET_SCALES[1:]]
    return "\n\n".join(tables)


HKDNET_TEXT = """\
### HKDnet (joint fusion + SR network) on its own LR inputs

`../shared/data/HKDnet_peer` ships HKDnet's LR inputs (`lr_{2x,3x,4x}/{ir,vi}`, 6 pairs) and its fused,
super-resolved outputs (`out_{2x,3x,4x}`), but no HR ground truth, so the protocol above cannot be applied.
How we compare: our baselines are run on exactly the same LR inputs (8-bit grey, PIL bicubic upsampling by the
same scale, so every output has HKDnet's output size), and every output is scored with
- the no-reference metrics EN, SD, SF, AG: they need no ground truth, but reward noise and invented texture
  as much as real detail;
- the reference metrics against the bicubic-upsampled LR inputs of the same scale: the sources every method
  was given. They measure how faithfully each output keeps both inputs, not how close it is to the unknown HR
  scene, and they favour the bicubic baselines, which are built from exactly these images; a network that
  restores true detail is *penalised* by them;
- for x3 and x4, the same reference metrics against the x2 LR inputs resized to the output size: the
  sharpest versions of the scene that ship. They are still not HR, but they are independent of the x3 / x4
  inputs, so detail a method restores that is really in the scene raises them rather than lowering them.
Read the no-reference columns and the x2-referenced tables together; neither alone says which is better."""


def pipeline_text(args: argparse.Namespace, plan: FSDiffPlan) -> str:
    """Which FS-Diff model ran on which datasets, and how ("" without `--pipeline`)."""
    if not args.pipeline:
        return ""
    method = fsdiff_name(args.steps, args.scheduler)
    ran = [f"{model.label} on {', '.join(model.datasets)}" for model in plan.models if model.runs()]
    lines = [
        f'FS-Diff (the method "{method}" of the tables and charts): {args.steps} steps of '
        f"{args.scheduler or 'its own scheduler'}, seed 0, {args.dtype} on {args.device}, "
        f"{torch.get_num_threads()} threads. "
        + (
            "`--pipeline default`: each dataset with the shipped model of its modality, under the one method name. "
            if args.pipeline == "default"
            else ""
        )
        + (f"Which model ran where: {'; '.join(ran)}." if ran else "It ran on no dataset.")
    ]
    reasons = defaultdict(list)
    for dataset, reason in plan.baselines_only.items():
        reasons[reason].append(dataset)
    lines += [f"Baselines only on {', '.join(datasets)}: {reason}." for reason, datasets in reasons.items()]
    lines.append(
        "s/image: wall time of one method call per pair (FS-Diff: the whole pipeline call, encoder included; "
        "the baselines: upsampling and fusion), mean over the pairs; metric computation not included."
    )
    return " ".join(lines)


def section(
    args, measured: ProtocolResults, pair_counts, hkdnet, hkdnet_methods, figures, grids, seconds, plan: FSDiffPlan
) -> str:
    load = os.getloadavg()[0]
    parts = [
        "## Fusion + super-resolution quality (`quality.py`)",
        f"Command: `python benchmarks/{Path(__file__).name}{' ' + ' '.join(args.argv) if args.argv else ''}` "
        f"({seconds / 60:.1f} min).",
        f"Machine: {machine_description()}. 1-minute load average at the end: {load:.1f}.",
        "Protocol (`fsdiff_diffusers.protocol`, DESIGN.md): the TEST pairs of `../shared/data/splits.json`; both "
        "sources to 8-bit grey (PIL `convert('L')`, so pseudo-colour PET / SPECT become their luminance); top-left "
        'crop to a multiple of the scale (HR); LR = PIL bicubic downscale; "bicubic + X" = both LR sources '
        "upsampled with PIL bicubic, fused with `fsdiff_diffusers.fusion.fuse(method=X)` and rounded to 8 bits. "
        "Metrics of the HR-size output against the HR sources, mean over the pairs, all in the VIFB convention "
        '(`metrics.evaluate`); PSNR is given in both forms: "PSNR (VIFB)" is VIFB\'s `metricsPsnr.m` '
        '(20 log10(255 / sqrt(m)), m a size-dependent RMSE mean: not comparable to the usual PSNR), "PSNR (MSE)" '
        "the usual 10 log10(255^2 / MSE) with MSE the mean over both sources (the form of DESIGN.md's tables). "
        "Q_ir / Q_vi are Qabf's two per-source terms (`metrics.edge_transfer`): how much of the infrared's (MRI's), "
        "resp. the visible's (CT / PET / SPECT's), own edges reach the output. "
        'Nabf is the only lower-is-better column. Lead with Qabf and SCD (DESIGN.md, "How to read them").'
        + (
            f" Sources centre-cropped to {args.crop} x {args.crop} first (a quick check, not the protocol)."
            if args.crop
            else ""
        ),
        pipeline_text(args, plan),
        target_line(measured.target_checks(args.scales)),
        reference_check(measured.means) if not (args.crop or args.limit) else "",
        dataset_tables(measured, pair_counts, args.scales, grids, plan, fsdiff_name(args.steps, args.scheduler)),
        "Figures: " + ", ".join(f"[{path.name}]({path})" for path in figures) + "." if figures else "",
    ]
    if hkdnet:
        rows = hkdnet_rows_text(hkdnet_methods, plan, fsdiff_name(args.steps, args.scheduler))
        parts += [HKDNET_TEXT, rows, hkdnet_tables(hkdnet, hkdnet_methods)]
    return "\n\n".join(part for part in parts if part)


def write_json(path: Path, split: str, measured: ProtocolResults) -> None:
    """The mean scores (`dataset -> scale -> method -> metric -> value`) and the wins of the target checks."""
    means: dict[str, dict[str, dict[str, Scores]]] = defaultdict(lambda: defaultdict(dict))
    for (dataset, scale, method), scores in measured.means.items():
        means[dataset][str(scale)][method] = scores
    checks = {
        f"{dataset} x{scale}": {"method": check.method, "summary": check.summary(), "edges": check.edge_summary()}
        for (dataset, scale), check in measured.target_checks(sorted({key[1] for key in measured.means})).items()
    }
    path.write_text(json.dumps({"split": split, "means": means, "target_checks": checks}, indent=2) + "\n")


def write_results_section(name: str, body: str, path: Path) -> None:
    """`results.write_section(name, body)` into the file `path` instead of benchmarks/RESULTS.md, when it differs."""
    default, results.RESULTS_PATH = results.RESULTS_PATH, Path(path)
    try:
        results.write_section(name, body)
    finally:
        results.RESULTS_PATH = default


def relative_link(path: Path, results_path: Path) -> Path:
    """`path` as a markdown link from the folder of `results_path`."""
    return Path(os.path.relpath(Path(path).resolve(), Path(results_path).resolve().parent))


# ----------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    split_parser = argparse.ArgumentParser(add_help=False)
    split_parser.add_argument("--split", choices=SPLITS, default="test")
    split = split_parser.parse_known_args(argv)[0].split  # the datasets and their defaults follow it
    datasets = [*split_stems(split), *([HKDNET] if split == "test" else [])]
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="test",
        help="test (default): the report, written to RESULTS.md; validation: the pairs that choose settings and "
        "checkpoints, printed only (never written to RESULTS.md) and saved with --json",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=datasets,
        default=datasets,
        metavar="NAME",
        help=f"default: {' '.join(datasets)}",
    )
    parser.add_argument("--scales", nargs="+", type=int, default=list(SCALES), help="default: 2 4 8")
    parser.add_argument(
        "--methods", nargs="+", choices=FUSION_METHODS, default=["mean", "max", "laplacian", "laplacian_max", "gff"]
    )
    add_pipeline_arguments(
        parser,
        pipeline_help="'default': each dataset with the shipped model of its modality (fsdiff_diffusers.IR_VIS_MODEL "
        "on the infrared-visible sets, fsdiff_diffusers.MEDICAL_MODEL on the Harvard sets), or the folder / Hub id "
        "of a saved FSDiffPipeline to add as a method on --pipeline_datasets",
    )
    parser.add_argument("--steps", type=int, default=10, help="denoising steps of --pipeline (default: 10)")
    parser.add_argument("--scheduler", help="diffusers scheduler class for --pipeline, e.g. DDIMScheduler")
    parser.add_argument(
        "--pipeline_datasets",
        nargs="+",
        choices=datasets,
        metavar="NAME",
        help="where --pipeline runs; the others show baselines only (default: with --pipeline default every dataset "
        f"whose shipped model is there, with --pipeline PATH {' '.join(PIPELINE_DATASETS)})",
    )
    parser.add_argument("--limit", type=int, help="at most this many pairs per dataset (quick checks)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the mean scores and target checks here")
    parser.add_argument(
        "--crop", type=int, help="centre-crop the sources to N x N first (quick checks; MS-SSIM needs N >= 176)"
    )
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = list(argv)
    if args.pipeline_datasets is None:
        args.pipeline_datasets = default_pipeline_datasets(args.pipeline, datasets, args.split)
    args.no_write = args.no_write or args.split == "validation"
    return args


def default_pipeline_datasets(pipeline: str | None, datasets: Sequence[str], split: str = "test") -> list[str]:
    """`--pipeline_datasets` when not given: with `--pipeline default` those of `datasets` whose modality's shipped
    model is there, else `PIPELINE_DATASETS` (on the validation split: every dataset)."""
    if pipeline != "default":
        return list(PIPELINE_DATASETS) if split == "test" else list(datasets)
    modality, models = modalities(), shipped_models()
    return [dataset for dataset in datasets if model_present(models[modality[dataset]][1])]


def add_pipeline_arguments(
    parser: argparse.ArgumentParser, default: str | None = None, pipeline_help: str | None = None
) -> None:
    """--pipeline, --threads, --device and --dtype (shared with sampler_sweep.py)."""
    parser.add_argument(
        "--pipeline",
        default=default,
        help=pipeline_help
        or "'default' (fsdiff_diffusers.DEFAULT_MODEL, the shipped infrared-visible model), or the folder / Hub id "
        f"of a saved FSDiffPipeline{'' if default else ' to add as a method'}",
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads(N) (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="torch device of the pipeline (default: cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="pipeline dtype (default: float32)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--no-write, --results and --figures_dir (shared with sampler_sweep.py)."""
    parser.add_argument("--no-write", action="store_true", help="print only: leave RESULTS.md and figures/ alone")
    parser.add_argument("--results", type=Path, default=results.RESULTS_PATH, help="the RESULTS.md to write into")
    parser.add_argument("--figures_dir", type=Path, default=FIGURES_DIR, help="where the figures go")


def main(argv: Sequence[str] | None = None) -> ProtocolResults:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    plan = plan_fsdiff(args)
    for model in plan.models:
        where = "not run: " + model.missing if model.missing else "on " + (", ".join(model.datasets) or "no dataset")
        print(f"FS-Diff: {model.label} ({model.path}), {where}")
    methods = build_methods(args, plan, args.datasets)
    stems = split_stems(args.split)
    datasets = {name: split_pairs(name, stems[name], args.limit) for name in args.datasets if name != HKDNET}
    measured = run_protocol(datasets, args.scales, {name: methods[name] for name in datasets}, args.crop)
    hkdnet_methods = methods.get(HKDNET, {})
    hkdnet = run_hkdnet(hkdnet_methods, args.limit) if HKDNET in args.datasets else {}
    for key, scores in {**measured.means, **hkdnet}.items():
        seconds = f" s/image={measured.seconds[key]:.3g}" if key in measured.seconds else ""
        print(*key, " ".join(f"{name}={value:.4g}" for name, value in scores.items()) + seconds)
    for (dataset, scale), check in measured.target_checks(args.scales).items():
        print(f"target check {dataset} x{scale} ({check.method}): {check.summary()}; {check.details()}")
        print(f"target check {dataset} x{scale} ({check.method}): {check.edge_summary()}")
    if args.json:
        write_json(args.json, args.split, measured)
    if args.no_write:
        return measured
    args.figures_dir.mkdir(parents=True, exist_ok=True)
    figures = bar_charts(measured.means, args.scales, args.figures_dir) if measured.means else []
    grids = image_grids(measured, args.figures_dir) if measured.grid else {}
    link = partial(relative_link, results_path=args.results)
    figures, grids = [link(path) for path in figures], {
        name: (link(path), best) for name, (path, best) in grids.items()
    }
    pair_counts = {name: len(pairs) for name, pairs in datasets.items()}
    seconds = time.perf_counter() - start
    body = section(args, measured, pair_counts, hkdnet, list(hkdnet_methods), figures, grids, seconds, plan)
    write_results_section("quality", body, args.results)
    return measured


if __name__ == "__main__":
    main()
