"""
Turn a checkpoint of `train_fsdiff.py` into a pipeline folder that `FSDiffPipeline.from_pretrained` loads.

    python training/export_checkpoint.py --checkpoint runs/ir_vis/checkpoint-4000 --output_dir my-fsdiff --dtype float16

The EMA weights are used when the checkpoint has them (`--no_ema` takes the raw ones). The folder gets
`model_index.json`, `unet/`, `clarity_encoder/`, `scheduler/` (the default DPM-Solver++ sampler for the U-Net's
prediction type) as safetensors, ready for `push_to_hub` or `huggingface-cli upload`.
"""

import argparse
import os

import torch

from fsdiff_diffusers import ClarityMambaEncoder, FSDiffPipeline, FSDiffUNet2DModel, default_scheduler

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_args(input_args: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Export a training checkpoint as an FSDiffPipeline folder.")
    parser.add_argument("--checkpoint", required=True, help="A `checkpoint-<step>` folder written by train_fsdiff.py.")
    parser.add_argument("--output_dir", required=True, help="Where to write the pipeline.")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="Dtype of the saved weights.")
    parser.add_argument("--no_ema", action="store_true", help="Export the raw weights even if EMA copies exist.")
    return parser.parse_args(input_args)


def load_component(checkpoint: str, name: str, model_cls: type, use_ema: bool) -> torch.nn.Module:
    """`<name>_ema/` of the checkpoint when `use_ema` and present, else `<name>/`."""
    ema_folder = os.path.join(checkpoint, f"{name}_ema")
    folder = ema_folder if use_ema and os.path.isdir(ema_folder) else os.path.join(checkpoint, name)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(
            f"{folder} has no config.json: --checkpoint must be a `checkpoint-<step>` folder of train_fsdiff.py."
        )
    return model_cls.from_pretrained(folder)


def export_checkpoint(checkpoint: str, output_dir: str, dtype: torch.dtype = torch.float32, use_ema: bool = True):
    """Build the pipeline of `checkpoint`, save it to `output_dir` in `dtype` and return it."""
    unet = load_component(checkpoint, "unet", FSDiffUNet2DModel, use_ema)
    encoder = load_component(checkpoint, "clarity_encoder", ClarityMambaEncoder, use_ema)
    pipeline = FSDiffPipeline(
        unet=unet, clarity_encoder=encoder, scheduler=default_scheduler(unet.config.prediction_type)
    )
    pipeline.to(dtype=dtype)
    pipeline.save_pretrained(output_dir)
    return pipeline


def main(args: argparse.Namespace) -> None:
    export_checkpoint(args.checkpoint, args.output_dir, DTYPES[args.dtype], use_ema=not args.no_ema)
    print(f"Saved the pipeline of {args.checkpoint} to {args.output_dir}")


if __name__ == "__main__":
    main(parse_args())
