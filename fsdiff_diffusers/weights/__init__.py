"""
Pipelines shipped inside the package, in Diffusers layout, so that fusion works offline right after installation.

```py
>>> from fsdiff_diffusers import DEFAULT_MODEL, MEDICAL_MODEL, FSDiffPipeline

>>> pipe = FSDiffPipeline.from_pretrained(DEFAULT_MODEL)  # the infrared-visible model, no download
>>> medical = FSDiffPipeline.from_pretrained(MEDICAL_MODEL)  # MRI as `infrared=`, CT / PET / SPECT as `visible=`
```
"""

import os

WEIGHTS_DIR = os.path.dirname(os.path.abspath(__file__))

IR_VIS_MODEL = os.path.join(WEIGHTS_DIR, "fsdiff-ir-vis")
"""Folder of the shipped infrared + visible model (x2 to x8), trained on the train split of the shared data."""

MEDICAL_MODEL = os.path.join(WEIGHTS_DIR, "fsdiff-medical")
"""Folder of the shipped MRI + CT / PET / SPECT model (x2 to x8), trained on the Harvard train split."""

DEFAULT_MODEL = IR_VIS_MODEL
"""The model `fsdiff fuse` and the examples use when no `--model` is given."""

SHIPPED_MODELS = {"fsdiff-ir-vis": IR_VIS_MODEL, "fsdiff-medical": MEDICAL_MODEL}
"""Short names of the shipped models, which `fsdiff fuse --model` accepts besides folders and Hub ids."""
