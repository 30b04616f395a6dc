"""Public names imported on first use (PEP 562), for the package's `__init__` modules: `import fsdiff_diffusers.cli`
(the `fsdiff` command's `--help` and argument errors) then does not pay for importing Diffusers and Transformers."""

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """
    The module-level `__getattr__` and `__dir__` of `package`, whose public names `exports` maps to the module that
    defines each (relative to `package`, such as `".pipelines.pipeline_fsdiff"`): a name is imported when first read,
    then kept in the package's namespace.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
