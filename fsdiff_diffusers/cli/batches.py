"""`fsdiff fuse` at scale: each process of a launch fuses its share of the pairs, in batches of pairs of one size.

- [`Processes`] reads the process's place from the variables that `torchrun` and `accelerate launch` set (`RANK`,
  `WORLD_SIZE`, `LOCAL_RANK`): no process group is needed, as the processes share nothing but the output folder, where
  each writes only its own pairs. Process `r` of `N` takes pairs `r, r + N, r + 2N, ...` of the sorted list, so that
  the shares stay even when a resumed run skips the pairs done before.
- [`fuse_in_batches`] loads the pairs one by one and runs those of one size together, `batch_size` at a time; a pair
  that fails to load fails alone, a batch that fails fails each of its pairs, and the others go on.
"""

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from .common import PAIR_ERRORS, fail
from .jobs import FuseJob

Item = TypeVar("Item")
Result = TypeVar("Result")

WAITING_BATCHES = 4
"""At most `WAITING_BATCHES * batch_size` loaded pairs wait for partners of their size; beyond that, the size that has
waited longest runs in a smaller batch (a folder of many sizes does not pile up in memory)."""


@dataclass(frozen=True)
class Processes:
    """
    This process among those a launcher started: `rank` (0 to `count - 1`) of `count`, `local_rank` on its machine.
    One process (rank 0 of 1) when no launcher set `WORLD_SIZE`.
    """

    rank: int = 0
    count: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Processes":
        """The process that `RANK`, `WORLD_SIZE` and `LOCAL_RANK` describe (`torchrun`, `accelerate launch`)."""
        values = {}
        for name, default in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", None)):
            text = environ.get(name, "")
            if text and not text.isdigit():
                raise ValueError(f"the environment variable {name}={text!r} is not a process number.")
            values[name] = int(text) if text else default
        count, rank = max(values["WORLD_SIZE"], 1), values["RANK"]
        if rank >= count:
            raise ValueError(f"the environment says RANK={rank} of WORLD_SIZE={count}; a rank must be below the size.")
        return cls(rank, count, rank if values["LOCAL_RANK"] is None else values["LOCAL_RANK"])

    @property
    def label(self) -> str:
        """`"[rank 1/4] "` before this process's summary lines when there are several processes, else `""`."""
        return f"[rank {self.rank}/{self.count}] " if self.count > 1 else ""

    def share(self, items: Sequence[Item]) -> list[Item]:
        """This process's items: `items[rank]`, `items[rank + count]`, ...; the processes' shares partition `items`."""
        return list(items[self.rank :: self.count])

    def device(self, name: str) -> str:
        """`--device` for this process: with several processes, `auto` and `cuda` mean `cuda:<local_rank>` where CUDA
        is available (one GPU per process); any other name is kept."""
        if self.count > 1 and name in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return name


@dataclass
class Loaded:
    """A loaded pair waiting for its batch: the job, its images and the seconds the loading took."""

    job: FuseJob
    images: dict[str, np.ndarray]
    seconds: float


def fuse_in_batches(
    jobs: Sequence[FuseJob],
    fuse: Callable[[list[str], list[dict[str, np.ndarray]]], list[Result]],
    save: Callable[[FuseJob, Result, float], float],
    batch_size: int,
    progress: bool = True,
) -> tuple[dict[str, float], dict[str, str]]:
    """
    Loads every job and fuses the pairs of one `(H, W)` together, up to `batch_size` in one `fuse` call.

    Args:
        jobs (`Sequence[FuseJob]`): the pairs, loaded in this order.
        fuse (`Callable`): `fuse(stems, images)` fuses a batch (the stems of its pairs and their [`FuseJob.load`]
            results, all of one size) and returns one result per pair, in order.
        save (`Callable`): `save(job, result, seconds)` writes one pair's result; `seconds` is the pair's loading time
            plus its share of the batch's; it returns the pair's total seconds.
        batch_size (`int`): the most pairs of one `fuse` call.
        progress (`bool`, defaults to `True`): show a progress bar on a terminal.

    Returns:
        `(seconds, failures)`: stem -> seconds of the pairs fused and saved, stem -> error message of the others (each
        also printed on stderr as it happens).
    """
    seconds, failures = {}, {}
    waiting: dict[tuple[int, int], list[Loaded]] = {}
    bar = tqdm(total=len(jobs), desc="fuse", unit="pair", disable=None if progress else True, file=sys.stderr)

    def run(batch: list[Loaded]) -> None:
        start = time.perf_counter()
        try:
            results = fuse([loaded.job.stem for loaded in batch], [loaded.images for loaded in batch])
        except PAIR_ERRORS as error:
            for loaded in batch:
                fail(loaded.job.stem, error, failures)
        else:
            share = (time.perf_counter() - start) / len(batch)
            for loaded, result in zip(batch, results):
                try:
                    seconds[loaded.job.stem] = save(loaded.job, result, loaded.seconds + share)
                except PAIR_ERRORS as error:
                    fail(loaded.job.stem, error, failures)
        bar.update(len(batch))

    for job in jobs:
        start = time.perf_counter()
        try:
            images = job.load()
        except PAIR_ERRORS as error:
            fail(job.stem, error, failures)
            bar.update()
            continue
        size = images["infrared"].shape[:2]
        waiting.setdefault(size, []).append(Loaded(job, images, time.perf_counter() - start))
        if len(waiting[size]) == batch_size:
            run(waiting.pop(size))
        elif sum(map(len, waiting.values())) > WAITING_BATCHES * batch_size:
            run(waiting.pop(next(iter(waiting))))
    for batch in waiting.values():
        run(batch)
    bar.close()
    return seconds, failures
