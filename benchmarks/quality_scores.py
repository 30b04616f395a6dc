"""The scoring of `quality.py`: which metrics, method names, scores of one output, and the target check of FS-Diff
against the best baseline of each metric."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fsdiff_diffusers import metrics

COLUMNS = [*metrics.METRICS, "PSNR-MSE"]
"""Every metric (VIFB convention; "PSNR" in VIFB's form), then PSNR in the usual 10 log10(255^2 / MSE) form."""
NO_REFERENCE = ["EN", "SD", "SF", "AG"]
REFERENCE = ["MI", "SCD", "VIF", "Qabf", "Q_ir", "Q_vi", "SSIM", "CC", "PSNR-MSE"]
LEAD_METRICS = ["Qabf", "SCD"]
"""The metrics hardest to game (DESIGN.md): each table names the method with the highest value of each."""
DESIGN_COLUMNS = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR-MSE"]
"""The columns of DESIGN.md's reference tables (and of the bar charts)."""
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


def baseline_name(method: str) -> str:
    return f"bicubic + {method}"


def short(method: str) -> str:
    """A method's name for tight spaces: "bicubic + gff" -> "bic+gff"."""
    return method.replace("bicubic + ", "bic+")


def is_fsdiff(method: str) -> bool:
    return method.startswith("FS-Diff")


def fsdiff_name(steps: int, scheduler: str | None = None) -> str:
    return f"FS-Diff ({scheduler.replace('Scheduler', '') + ', ' if scheduler else ''}{steps} steps)"


def labels(names: Sequence[str]) -> list[str]:
    """Column headers: the metric names, with the two PSNR forms spelled out."""
    return [{"PSNR": "PSNR (VIFB)", "PSNR-MSE": "PSNR (MSE)"}.get(name, name) for name in names]


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
