"""The runs of `sampler_sweep.py`: the schedulers it compares, one run's scores against the reference's
(`SweepRun`), and the `Sampler` that runs a pipeline with any of them on the protocol pairs, counting U-Net
evaluations, with a disk cache."""

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import quality
from fsdiff_diffusers import protocol
from quality import Scores

SCHEDULERS = {
    "DDPM": "DDPMScheduler",
    "DDIM": "DDIMScheduler",
    "DPM-Solver++": "DPMSolverMultistepScheduler",
    "UniPC": "UniPCMultistepScheduler",
}
"""Label -> diffusers scheduler class."""
REFERENCE = "DDPM"
TOLERANCE = 0.01
"""Within 1 % of the reference on every target metric (`quality.TARGET_METRICS`)."""
METRICS = [*quality.TARGET_METRICS, *quality.EDGE_METRICS]
"""What each run is scored with: the target metrics (judged), then Q_ir and Q_vi (shown)."""
CACHE_DIR = Path(tempfile.gettempdir()) / "fsdiff_sampler_sweep"


@dataclass
class SweepRun:
    """One scheduler at one step count, averaged over the pairs.

    Args:
        scheduler (`str`): a label out of `SCHEDULERS`. steps (`int`): `num_inference_steps`.
        scores (`Scores`): mean of each of `METRICS`.
        seconds (`float`): mean wall time of a pipeline call per image.
        evaluations (`float`): mean U-Net forward passes per image (counted, not assumed).
        cached (`int`): how many of the pairs came from the cache (their seconds are from the run that made them).
    """

    scheduler: str
    steps: int
    scores: Scores
    seconds: float
    evaluations: float
    cached: int = 0

    def differences(self, reference: "SweepRun", names: Sequence[str] = quality.TARGET_METRICS) -> dict[str, float]:
        """Metric -> |m - m_ref| / |m_ref| against `reference`, for `names` (default: the judged target metrics)."""
        return {name: relative_difference(self.scores[name], reference.scores[name]) for name in names}

    def within(self, reference: "SweepRun", tolerance: float = TOLERANCE) -> bool:
        """Whether every target metric is within `tolerance` (relative) of `reference`."""
        return max(self.differences(reference).values()) <= tolerance


def relative_difference(value: float, reference: float) -> float:
    """|value - reference| / |reference| (0 when both are 0, infinite when only the reference is)."""
    if reference == 0:
        return 0.0 if value == 0 else float("inf")
    return abs(value - reference) / abs(reference)


def smallest_within(runs: Sequence[SweepRun], reference: SweepRun, tolerance: float = TOLERANCE) -> SweepRun | None:
    """The run with the fewest steps that is within `tolerance` of `reference` on every target metric, or `None`."""
    return next((run for run in sorted(runs, key=lambda run: run.steps) if run.within(reference, tolerance)), None)


def label_of(scheduler) -> str:
    """The `SCHEDULERS` label of a scheduler instance (its class name when it has none)."""
    name = type(scheduler).__name__
    return next((label for label, class_name in SCHEDULERS.items() if class_name == name), name)


def fingerprint(pipe) -> str:
    """A hash of the pipeline's weights and model configs: the cache key's part that says which model ran."""
    digest = hashlib.sha256()
    for model in (pipe.unet, pipe.clarity_encoder):
        digest.update(json.dumps(dict(model.config), sort_keys=True, default=str).encode())
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class Sampler:
    """Runs `pipe` with any scheduler of `SCHEDULERS` on protocol pairs, counting U-Net evaluations, with a disk cache.

    Args:
        pipe (`FSDiffPipeline`): the loaded pipeline; its scheduler's config is the base of every scheduler.
        seed (`int`): the noise seed of every run.
        cache_dir (`Path`, *optional*): where outputs are cached (`None`: no cache).
        key (`dict`): what else the cache key must hold (dtype, device, threads, ...).
    """

    def __init__(self, pipe, seed: int = 0, cache_dir: Path | None = None, **key):
        self.pipe, self.seed, self.cache_dir = pipe, seed, cache_dir
        self.base_config = dict(pipe.scheduler.config)
        self.key = {"model": fingerprint(pipe), "seed": seed, **key}
        self.evaluations = 0
        pipe.unet.register_forward_pre_hook(self._count)

    def _count(self, module, inputs) -> None:
        self.evaluations += 1

    def set_scheduler(self, label: str) -> None:
        import diffusers

        self.pipe.scheduler = getattr(diffusers, SCHEDULERS.get(label, label)).from_config(self.base_config)

    def cache_path(self, label: str, steps: int, name: str) -> Path | None:
        if self.cache_dir is None:
            return None
        config = {k: v for k, v in self.pipe.scheduler.config.items() if not k.startswith("_")}
        key = {**self.key, "scheduler": type(self.pipe.scheduler).__name__, "config": config, "steps": steps}
        digest = hashlib.sha256(json.dumps({**key, "pair": name}, sort_keys=True, default=str).encode()).hexdigest()
        return self.cache_dir / f"{label}-{steps}-{digest[:20]}.npz"

    def sample(
        self, label: str, steps: int, name: str, example: protocol.ProtocolPair
    ) -> tuple[np.ndarray, float, int, bool]:
        """`(fused uint8, seconds, U-Net evaluations, from the cache)` of one pair (`name`: its part of the key)."""
        self.set_scheduler(label)
        path = self.cache_path(label, steps, name)
        if path is not None and path.exists():
            with np.load(path) as cached:
                return cached["fused"], float(cached["seconds"]), int(cached["evaluations"]), True
        method = quality.fsdiff_method(self.pipe, steps, self.seed)
        before = self.evaluations
        fused, seconds = quality.timed(method, example.infrared_lr, example.visible_lr, example.scale)
        evaluations = self.evaluations - before
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, fused=fused, seconds=seconds, evaluations=evaluations)
        return fused, seconds, evaluations, False

    def run(self, label: str, steps: int, examples: dict[str, protocol.ProtocolPair]) -> SweepRun:
        """`label` with `steps` steps on every pair of `examples` (name -> pair), averaged."""
        rows, seconds, evaluations, cached = [], [], [], 0
        for name, example in examples.items():
            fused, elapsed, count, hit = self.sample(label, steps, name, example)
            rows.append(quality.score(fused, example.infrared, example.visible, METRICS))
            seconds.append(elapsed)
            evaluations.append(count)
            cached += hit
        return SweepRun(
            label, steps, quality.mean_scores(rows), float(np.mean(seconds)), float(np.mean(evaluations)), cached
        )


def load_examples(
    dataset: str, limit: int | None, crop: int | None, scale: int
) -> dict[str, protocol.ProtocolPair]:
    """The first `limit` test pairs of `dataset`, centre-cropped to `crop`, as protocol pairs at `scale`, by name."""
    pairs = quality.split_pairs(dataset, quality.split_stems()[dataset], limit)
    return {
        f"{dataset}/{pair.stem}/crop{crop}/x{scale}": protocol.make_pair(*quality.load_sources(pair, crop), scale)
        for pair in pairs
    }
