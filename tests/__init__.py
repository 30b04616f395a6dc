"""The test suite of fsdiff_diffusers (a package, so that test modules share `conftest.py`'s helpers)."""
