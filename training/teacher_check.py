"""How good could a student of each classical fusion rule be? Every rule of `fsdiff_diffusers.fusion` on validation
pairs, twice: as a baseline (bicubic upsampling of the LR pair, then the rule) and as a teacher (the rule on the HR
sources: what a perfect student of that teacher would output), scored with the quality report's metrics against the
HR sources. A good teacher is far above its own baseline on the metrics that matter, including both sources' edge
transfer (Q_ir, Q_vi).

Usage: python training/teacher_check.py [--group infrared_visible|medical] [--split validation] [--scale 4]
       [--crop 256] [--every 3] [--limit 12]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, like train_fsdiff.py

from fsdiff_diffusers import metrics, protocol  # noqa: E402
from fsdiff_diffusers.fusion import FUSION_METHODS  # noqa: E402
from training.dataset import records_from_splits  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
METRICS = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "Q_ir", "Q_vi", "SSIM"]


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central `size` x `size` part of a `(H, W)` image (a side shorter than `size` is kept whole)."""
    top, left = max(0, (image.shape[0] - size) // 2), max(0, (image.shape[1] - size) // 2)
    return image[top : top + size, left : left + size]


def rule_scores(args: argparse.Namespace) -> dict[tuple[str, str], dict[str, float]]:
    """(kind, rule) -> mean scores over the chosen pairs; kind is "bicubic + rule" or "rule on HR (teacher)"."""
    records = records_from_splits(args.data_dir, args.group, args.split)[:: args.every][: args.limit]
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    for record in records:
        infrared, visible = (
            centre_crop(protocol.load_grey(record.images[name], name), args.crop) for name in ("infrared", "visible")
        )
        pair = protocol.make_pair(infrared, visible, args.scale)
        hr = [pair.infrared.astype(np.float64), pair.visible.astype(np.float64)]
        for rule in FUSION_METHODS:
            fused = {
                "bicubic + rule": protocol.bicubic_fusion_baseline(pair.infrared_lr, pair.visible_lr, args.scale, rule),
                "rule on HR (teacher)": protocol.fuse_grey(pair.infrared, pair.visible, rule),
            }
            for kind, image in fused.items():
                rows.setdefault((kind, rule), []).append(metrics.evaluate(image.astype(np.float64), *hr, METRICS))
    print(f"{len(records)} {args.split} pairs of {args.group}, x{args.scale}, {args.crop}x{args.crop} centre crops")
    return {key: {name: float(np.mean([row[name] for row in rows[key]])) for name in METRICS} for key in rows}


def main(argv: list[str] | None = None) -> dict[tuple[str, str], dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=DATA_DIR)
    parser.add_argument("--group", choices=("infrared_visible", "medical"), default="infrared_visible")
    parser.add_argument("--split", choices=("train", "validation"), default="validation")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--every", type=int, default=3, help="take every N-th pair of the split")
    parser.add_argument("--limit", type=int, default=12, help="at most this many pairs")
    args = parser.parse_args(argv)
    scores = rule_scores(args)
    print("| kind | rule | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for (kind, rule), values in sorted(scores.items()):
        print(f"| {kind} | {rule} | " + " | ".join(f"{values[name]:.3f}" for name in METRICS) + " |")
    return scores


if __name__ == "__main__":
    main()
