"""
Pipelines shipped inside the package, in Diffusers layout, so that fusion works offline right after installation.

```py
>>> from fsdiff_diffusers import DEFAULT_MODEL, FSDiffPipeline

>>> pipe = FSDiffPipeline.from_pretrained(DEFAULT_MODEL)  # the infrared-visible model, no download
```
"""

import os

WEIGHTS_DIR = os.path.dirname(os.path.abspath(__file__))

IR_VIS_MODEL = os.path.join(WEIGHTS_DIR, "fsdiff-ir-vis")
"""Folder of the shipped infrared + visible model (x2 to x8), trained on the train split of the shared data."""

DEFAULT_MODEL = IR_VIS_MODEL
"""The model `fsdiff fuse` and the examples use when no `--model` is given."""
