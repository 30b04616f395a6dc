"""`fsdiff demo`: the Gradio app of `fsdiff_diffusers.demo` on this machine. Gradio is imported only when the command
runs, so `fsdiff --help` and the other commands work without the `demo` extra."""

import argparse
import importlib.util
from pathlib import Path

from ..comparison import CPU_MEGAPIXEL_STEPS
from .common import EXIT_OK, finite_number
from .fuse import device_name

DEMO_DESCRIPTION = f"""\
Start the FS-Diff demo app in your browser: upload an infrared (or MRI) and a visible (or CT / PET /
SPECT) image, or pick an example, and see the fused, super-resolved image against the best classical
baseline, the bicubic inputs and the encoder's clarity maps. Needs the demo extra:
pip install "fsdiff-diffusers[demo]".

The app serves on --host (this machine only by default) and never makes a public share link. On the
CPU a request is capped at {CPU_MEGAPIXEL_STEPS:g} output megapixels times steps, so that it ends in under a
minute: larger inputs are shrunk first. --max-megapixel-steps changes the cap, 0 lifts it; on a GPU
there is none. When the shared data folder is found (--data, $FSDIFF_DATA, or ../shared/data), the
first test pair of five of its datasets join the synthetic example pair."""

DEMO_EPILOG = """\
examples:
  fsdiff demo                       # http://127.0.0.1:7860
  fsdiff demo --port 8000 --data ../shared/data
  fsdiff demo --device cuda"""


def run_demo(args: argparse.Namespace) -> int:
    """`fsdiff demo`: build the app with [`build_demo`] and serve it until interrupted."""
    if importlib.util.find_spec("gradio") is None:
        raise ValueError('the demo needs Gradio: pip install "fsdiff-diffusers[demo]"')
    from ..demo import build_demo

    max_megapixel_steps = args.max_megapixel_steps or None
    demo = build_demo(args.data, args.device, max_megapixel_steps)
    demo.launch(server_name=args.host, server_port=args.port, share=False, inbrowser=args.open)
    return EXIT_OK


def megapixel_steps(text: str) -> float:
    """argparse type of `--max-megapixel-steps`: a finite number >= 0."""
    value = finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of megapixels >= 0 (0: no cap)")
    return value


def add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start the demo app in your browser (needs the demo extra)",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine)")
    parser.add_argument("--port", type=int, default=None, help="port to serve on (default: 7860, or the next free one)")
    parser.add_argument(
        "--data", type=Path, default=None, metavar="DIR", help="the shared data folder, for real example pairs"
    )
    parser.add_argument("--device", type=device_name, default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--max-megapixel-steps",
        type=megapixel_steps,
        default=CPU_MEGAPIXEL_STEPS,
        metavar="N",
        help=f"CPU cap of a request, output megapixels x steps (default: {CPU_MEGAPIXEL_STEPS:g}; 0: no cap)",
    )
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.set_defaults(run=run_demo)
