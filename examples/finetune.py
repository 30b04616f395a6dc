#!/usr/bin/env python
"""Fine-tune the shipped infrared-visible pipeline on your own pairs, then fuse one of them with the result.

    python examples/finetune.py --train_data_dir my_pairs --output_dir fsdiff-finetuned

`my_pairs` holds `ir/` and `vi/` with one registered image per scene, matched by file stem (`ir/0001.png` goes with
`vi/0001.jpg`), at full (high) resolution: the training script makes the low-resolution inputs itself. This calls
the main() of training/train_fsdiff.py in-process with small-step defaults; it is the same as

    accelerate launch training/train_fsdiff.py \\
      --pretrained_model_name_or_path fsdiff_diffusers/weights/fsdiff-ir-vis \\
      --train_data_dir my_pairs --output_dir fsdiff-finetuned --max_train_steps 200 \\
      --learning_rate 2e-5 --lr_warmup_steps 20 --use_ema --ema_max_decay 0.999 \\
      --resolution 128 --scale 2-8 --train_batch_size 8 --report_to none --seed 0

Any other flag of the training script is passed on (e.g. `--mixed_precision bf16 --report_to tensorboard`).
The fine-tuned pipeline (EMA weights, model card) is saved to --output_dir, then it fuses the first pair of
`my_pairs` downscaled to --sample_size pixels wide, saved as `<output_dir>/sample_fused.png`.
"""

import argparse
import sys

import PIL.Image
import torch

from _common import DEVICE, REPO_ROOT, downscale, load_pipeline
from fsdiff_diffusers import DEFAULT_MODEL
from fsdiff_diffusers.pairing import match_pairs

sys.path.insert(0, str(REPO_ROOT))  # training/ sits beside the package, it is not installed with it
from training.train_fsdiff import main as train  # noqa: E402
from training.train_fsdiff import parse_args as parse_train_args


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """This example's options, and the remaining flags for the training script."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_data_dir", required=True, help="Folder with ir/ and vi/ images matched by stem.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Pipeline to start from (folder or Hub id).")
    parser.add_argument("--output_dir", default="fsdiff-finetuned")
    parser.add_argument("--max_train_steps", type=int, default=200)
    parser.add_argument("--learning_rate", type=float, default=2e-5, help="Small: adapt, do not retrain.")
    parser.add_argument("--resolution", type=int, default=128, help="Side of the square high-resolution crops.")
    parser.add_argument("--train_batch_size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample_size", type=int, default=160, help="Width of the low-resolution sample input.")
    parser.add_argument("--sample_steps", type=int, default=10)
    parser.add_argument("--device", default=DEVICE)
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Fine-tune, save, reload and fuse a sample; returns the path of the sample."""
    args, training_flags = parse_args(argv)
    train_args = parse_train_args([
        "--pretrained_model_name_or_path", str(args.model), "--train_data_dir", args.train_data_dir,
        "--output_dir", args.output_dir, "--max_train_steps", str(args.max_train_steps),
        "--learning_rate", str(args.learning_rate), "--lr_warmup_steps", str(args.max_train_steps // 10),
        "--use_ema", "--ema_max_decay", "0.999", "--resolution", str(args.resolution), "--scale", "2-8",
        "--train_batch_size", str(args.train_batch_size), "--report_to", "none", "--seed", str(args.seed),
        *training_flags,  # later flags win
    ])  # fmt: skip
    train(train_args)

    pipe = load_pipeline(args.output_dir, args.device)
    first = match_pairs(f"{args.train_data_dir}/ir", f"{args.train_data_dir}/vi")[0]
    infrared, visible = (downscale(PIL.Image.open(first[name]), args.sample_size) for name in ("infrared", "visible"))
    fused = pipe(
        infrared=infrared,
        visible=visible,
        scale=4,
        num_inference_steps=args.sample_steps,
        generator=torch.Generator().manual_seed(args.seed),
    ).images[0]
    output = f"{args.output_dir}/sample_fused.png"
    fused.save(output)
    print(f"Fine-tuned pipeline in {args.output_dir}: FSDiffPipeline.from_pretrained({args.output_dir!r})")
    print(f"Fused {first.stem} ({visible.width}x{visible.height}) x4 -> {output} ({fused.width}x{fused.height})")
    return output


if __name__ == "__main__":
    main()
