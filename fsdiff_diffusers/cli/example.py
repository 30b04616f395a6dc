"""`fsdiff example`: write the synthetic infrared + visible pair of `fsdiff_diffusers.example_pair`."""

import argparse
from pathlib import Path

from PIL.PngImagePlugin import PngInfo

from ..example_pair import MIN_SIZE, example_pair
from .common import EXIT_OK, image_size
from .outputs import output_folder, save_image

EXAMPLE_DESCRIPTION = """\
Write a synthetic infrared + visible pair of a made-up street scene, to try 'fsdiff fuse' without data.

The scene is drawn by fsdiff_diffusers.example_pair: it is NOT real data. Two people are hidden in the
visible view (one behind smoke, one in a building's shadow) and bright in the infrared view; the visible
view has the colour and texture. The images are registered, low resolution (160x120 unless --size
says otherwise), and written as DIR/infrared.png (grey) and DIR/visible.png (colour)."""

EXAMPLE_EPILOG = """\
examples:
  fsdiff example -o demo
  fsdiff fuse --infrared demo/infrared.png --visible demo/visible.png --scale 4 -o demo/fused.png"""

SYNTHETIC_NOTE = "synthetic example scene drawn by fsdiff_diffusers.example_pair, not real data"


def run_example(args: argparse.Namespace) -> int:
    """`fsdiff example`: write the synthetic pair of [`example_pair`] as `infrared.png` and `visible.png`."""
    width, height = args.size
    infrared, visible = example_pair(width, height, args.seed)
    output_folder("-o", args.out)
    note = PngInfo()
    note.add_text("Description", SYNTHETIC_NOTE)
    paths = {name: args.out / f"{name}.png" for name in ("infrared", "visible")}
    save_image(infrared, paths["infrared"], pnginfo=note)
    save_image(visible, paths["visible"], pnginfo=note)
    print(f"wrote a {SYNTHETIC_NOTE} ({width}x{height}): {paths['infrared']} (grey), {paths['visible']} (colour)")
    print(
        f"fuse it: fsdiff fuse --infrared {paths['infrared']} --visible {paths['visible']} -o {args.out / 'fused.png'}"
    )
    return EXIT_OK


def example_size(text: str) -> tuple[int, int]:
    """argparse type of `fsdiff example --size`: an [`image_size`] at least [`MIN_SIZE`]."""
    width, height = image_size(text)
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise argparse.ArgumentTypeError(f"{text} is too small; the example is at least {MIN_SIZE[0]}x{MIN_SIZE[1]}")
    return width, height


def add_example_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "example",
        help="write a synthetic example pair (made up, not real data)",
        description=EXAMPLE_DESCRIPTION,
        epilog=EXAMPLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder to write infrared.png and visible.png into",
    )
    parser.add_argument(
        "--size", type=example_size, default=(160, 120), metavar="WxH", help="image size in pixels (default: 160x120)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the textures and the noise (default: 0)")
    parser.set_defaults(run=run_example)
