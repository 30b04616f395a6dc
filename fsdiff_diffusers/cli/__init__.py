"""The `fsdiff` command: `fsdiff fuse` fuses and super-resolves pairs with an FS-Diff pipeline, `fsdiff example`
draws a synthetic pair, `fsdiff evaluate` scores fused images, `fsdiff baseline` makes "bicubic + fusion" results,
`fsdiff demo` serves the Gradio app of `fsdiff_diffusers.demo`.

One module per subcommand (a `run_<command>(args) -> int` function and an `add_<command>_parser(subparsers)`
builder), `common` for what they share; [`main`] ties them together. Folders are paired by file stem with
[`fsdiff_diffusers.pairing.scan_pairs`]; a file that fails is named on stderr, the others are still processed, and
the exit status is 1 when any failed.
"""

import argparse
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from . import baseline, demo, evaluate, example, fuse
from .common import EXIT_USAGE, report

MAIN_DESCRIPTION = """\
FS-Diff: simultaneous multimodal image fusion and super-resolution.

Two registered images of one scene (infrared + visible, or MRI + CT / PET / SPECT) go in, one fused
image comes out. Folders are paired by file name: ir/05.png goes with vi/05.jpg."""

MAIN_EPILOG = """\
examples:
  fsdiff fuse --infrared ir.png --visible vi.png --scale 4 -o fused.png
  fsdiff fuse --infrared lr/ir --visible lr/vi -o results/fsdiff
  fsdiff evaluate --fused results/fsdiff --infrared hr/ir --visible hr/vi --csv scores.csv
  fsdiff demo

Run 'fsdiff COMMAND --help' for the options of a command."""


def package_version() -> str:
    """The installed fsdiff-diffusers version, "unknown" when run from a source tree that is not installed."""
    try:
        return version("fsdiff-diffusers")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The `fsdiff` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="fsdiff",
        description=MAIN_DESCRIPTION,
        epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    fuse.add_fuse_parser(subparsers)
    example.add_example_parser(subparsers)
    evaluate.add_evaluate_parser(subparsers)
    baseline.add_baseline_parser(subparsers)
    demo.add_demo_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `fsdiff` with `argv` (default: the command line); returns the exit status.

    0: every pair was processed; 1: some pairs failed (each named on stderr); 2: bad arguments or folders.
    """
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return args.run(args)
    except (OSError, ValueError) as error:
        print(f"fsdiff: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def show_warning(message: Warning | str, *_: object, **__: object) -> None:
    """Python warnings (an upscaling beyond x8, ...) as one `warning:` line, without the file and code line."""
    report(f"warning: {message}")
