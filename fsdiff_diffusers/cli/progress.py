"""Feedback while `fsdiff fuse` samples: how long an image will take (with a warning before a long one), and step
lines when no progress bar can be shown (output to a file or a pipe, as in scripts and CI logs)."""

import sys
import time
from typing import Any

from .common import report


def duration(seconds: float) -> str:
    """`seconds` as "42 s", "3.5 min" or "1.2 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class StepReporter:
    """
    A `callback_on_step_end` of [`FSDiffPipeline`] for one image.

    After the first step it knows the time a step takes: when the image will take longer than `long_run` seconds it
    says how long and what makes it faster. Without a terminal on stderr (where tqdm shows no bar) it also reports the
    step reached every `interval` seconds.

    Args:
        label (`str`): the pair, as the messages name it.
        total (`int`): the number of denoising steps.
        interval (`float`): seconds between step lines without a terminal.
        long_run (`float`): seconds from which the first-step estimate is reported as a warning.
    """

    def __init__(self, label: str, total: int, interval: float = 10.0, long_run: float = 60.0):
        self.label, self.total, self.interval, self.long_run = label, total, interval, long_run
        self.quiet = sys.stderr.isatty()  # the pipeline's progress bar shows the steps there
        self.start = self.last = time.perf_counter()

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        now = time.perf_counter()
        done = step + 1
        left = (now - self.start) / done * (self.total - done)
        if done == 1 and left > self.long_run:
            report(
                f"warning: {self.label} will take about {duration(now - self.start + left)} ({self.total} steps of "
                f"{duration(now - self.start)}); fewer --steps, a smaller --scale / --size or a GPU is faster"
            )
        elif not self.quiet and now - self.last >= self.interval and done < self.total:
            elapsed = duration(now - self.start)
            report(f"{self.label}: step {done} of {self.total}, {elapsed}, about {duration(left)} left")
        else:
            return {}
        self.last = now
        return {}
