"""`fsdiff baseline`: the "bicubic + classical fusion rule" baseline of joint fusion and super-resolution."""

import argparse
from pathlib import Path

import PIL.Image

from ..fusion import FUSION_METHODS
from ..pairing import Pair
from ..protocol import bicubic_fusion_baseline, load_grey
from .common import finish, load_pair, pair_folders, process_pairs, scale_factor
from .outputs import check_spares_inputs, output_folder, pending_pairs, save_image

BASELINE_DESCRIPTION = """\
Make the "bicubic + fusion" baseline of joint fusion and super-resolution for every pair of two folders.

The images given are the LOW-resolution inputs: each is turned 8-bit grey (its luminance),
upsampled by --scale with PIL's bicubic filter, and the two are fused with a classical rule. The
result, grey and --scale times the input size, is written to --out as <name>.png. To measure the
baseline against high-resolution sources, downscale them first (top-left crop to a multiple of the
scale, then bicubic downscale) and run 'fsdiff evaluate' on the results.

methods:
  gff            guided-filter fusion (Li et al., 2013)
  laplacian      Laplacian pyramid, 4 detail bands, max-abs detail selection, averaged base
  laplacian_max  the same over the brighter of the two bases (keeps hot infrared targets)
  mean           pixel-wise average
  max            pixel-wise maximum"""

BASELINE_EPILOG = """\
examples:
  fsdiff baseline --method gff --infrared lr/ir --visible lr/vi --scale 4 --out results/gff_x4
  fsdiff baseline --method mean --infrared lr/ir --visible lr/vi --scale 2.5 --out results/mean"""


def run_baseline(args: argparse.Namespace) -> int:
    """`fsdiff baseline`: upsample every LR pair bicubically by `--scale`, fuse it, write `<stem>.png`."""
    check_spares_inputs("--out", args.out, (Path(args.infrared), Path(args.visible)), folder=True)
    pairs = pair_folders([args.infrared, args.visible], ("infrared", "visible"))
    output_folder("--out", args.out)
    outputs = {pair.stem: args.out / f"{pair.stem}.png" for pair in pairs}
    todo = pending_pairs(pairs, outputs, args.overwrite)

    def fuse_pair(pair: Pair) -> Path:
        images = load_pair(pair, load_grey)
        fused = bicubic_fusion_baseline(images["infrared"], images["visible"], args.scale, args.method)
        save_image(PIL.Image.fromarray(fused), outputs[pair.stem])
        return outputs[pair.stem]

    written, failures = process_pairs(todo, fuse_pair, f"{args.method} x{args.scale:g}")
    print(f"wrote {len(written)} fused image{'s' * (len(written) != 1)} to {args.out}")
    return finish(len(todo), failures)


def add_baseline_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="bicubic upsampling + a classical fusion rule (baseline)",
        description=BASELINE_DESCRIPTION,
        epilog=BASELINE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", choices=FUSION_METHODS, required=True, help="fusion rule")
    parser.add_argument(
        "--infrared", required=True, metavar="DIR", help="folder of the LR first sources (infrared, MRI)"
    )
    parser.add_argument(
        "--visible", required=True, metavar="DIR", help="folder of the LR second sources (visible, CT / PET / SPECT)"
    )
    parser.add_argument(
        "--scale", type=scale_factor, default=4.0, metavar="S", help="upscaling factor, any number >= 1 (default: 4)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write <name>.png into")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    parser.set_defaults(run=run_baseline)
