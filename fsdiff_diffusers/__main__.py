"""`python -m fsdiff_diffusers ...` runs the `fsdiff` command."""

import sys

from .cli import main

sys.exit(main())
