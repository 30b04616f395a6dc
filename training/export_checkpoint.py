"""
Turn a checkpoint of `train_fsdiff.py` into a pipeline folder that `FSDiffPipeline.from_pretrained` loads.

    python training/export_checkpoint.py --checkpoint runs/ir_vis/checkpoint-4000 --output_dir my-fsdiff \
        --dtype float16 --evaluation scores.md --training_data data.md --card_copy model_card.md

The EMA weights are used when the checkpoint has them (`--no_ema` takes the raw ones). The folder gets
`model_index.json`, `unet/`, `clarity_encoder/`, `scheduler/` (the default DPM-Solver++ sampler for the U-Net's
prediction type) as safetensors, and a model card `README.md` (`--no_card` leaves it out), ready for `push_to_hub` or
`hf upload`. The card's training section comes from the run's `training_args.json` (next to the checkpoint folder)
and the step in the checkpoint's name; `--evaluation`, `--training_data` and `--limitations` fill the other sections
with the contents of markdown files.
"""

import argparse
import json
import os
import re
import shutil
from pathlib import Path

import torch
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file

from fsdiff_diffusers import ClarityMambaEncoder, FSDiffPipeline, FSDiffUNet2DModel
from fsdiff_diffusers.loading import DTYPES
from fsdiff_diffusers.model_card import TRAINING_ARGS_NAME, TrainingDetails


def parse_args(input_args: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Export a training checkpoint as an FSDiffPipeline folder.")
    parser.add_argument("--checkpoint", required=True, help="A `checkpoint-<step>` folder written by train_fsdiff.py.")
    parser.add_argument("--output_dir", required=True, help="Where to write the pipeline.")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="Dtype of the saved weights.")
    parser.add_argument("--no_ema", action="store_true", help="Export the raw weights even if EMA copies exist.")
    parser.add_argument(
        "--default_steps",
        type=int,
        default=None,
        help="Register the pipeline's default_num_inference_steps (choose it on the validation split).",
    )
    card = parser.add_argument_group("model card")
    card.add_argument("--no_card", action="store_true", help="Write no README.md model card.")
    card.add_argument(
        "--repo_id", default=None, help="Hub id the card's title and examples name (default: the --output_dir name)."
    )
    card.add_argument("--evaluation", type=Path, metavar="FILE.md", help="Markdown for the evaluation section.")
    card.add_argument(
        "--training_data", type=Path, metavar="FILE.md", help="Markdown on the training datasets and their licences."
    )
    card.add_argument(
        "--limitations", type=Path, metavar="FILE.md", help="Markdown replacing the default limitations."
    )
    card.add_argument("--card_copy", default=None, metavar="PATH", help="Also write the card to PATH.")
    args = parser.parse_args(input_args)
    if args.no_card and args.card_copy is not None:
        parser.error("--card_copy copies the model card: it cannot go with --no_card.")
    return args


def load_component(checkpoint: str, name: str, model_cls: type, use_ema: bool) -> torch.nn.Module:
    """`<name>_ema/` of the checkpoint when `use_ema` and present, else `<name>/`."""
    ema_folder = os.path.join(checkpoint, f"{name}_ema")
    folder = ema_folder if use_ema and os.path.isdir(ema_folder) else os.path.join(checkpoint, name)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(
            f"{folder} has no config.json: --checkpoint must be a `checkpoint-<step>` folder of train_fsdiff.py."
        )
    # EMA folders also hold the EMA's own bookkeeping (decay, optimization_step, ...) in config.json: keep only the
    # model's arguments so that the exported configs load without warnings.
    init_config = model_cls.extract_init_dict(model_cls.load_config(folder))[0]
    model = model_cls.from_config(init_config)
    model.load_state_dict(load_file(os.path.join(folder, SAFETENSORS_WEIGHTS_NAME)))
    return model


def checkpoint_training_details(checkpoint: str, prediction_type: str) -> TrainingDetails | None:
    """
    The training details of `checkpoint`: its run's `training_args.json` (in the checkpoint's parent folder) and the
    step of its `checkpoint-<step>` name; `None` when the run recorded no arguments.
    """
    folder = Path(checkpoint).resolve()
    training_args = folder.parent / TRAINING_ARGS_NAME
    if not training_args.is_file():
        return None
    step = re.fullmatch(r"checkpoint-(\d+)", folder.name)
    return TrainingDetails.from_training_args(
        json.loads(training_args.read_text()), int(step.group(1)) if step else None, prediction_type
    )


def export_checkpoint(
    checkpoint: str,
    output_dir: str,
    dtype: torch.dtype = torch.float32,
    use_ema: bool = True,
    card: bool = True,
    repo_id: str | None = None,
    evaluation: str | None = None,
    training_data: str | None = None,
    limitations: str | None = None,
    default_steps: int | None = None,
) -> FSDiffPipeline:
    r"""
    Build the pipeline of `checkpoint`, save it to `output_dir` in `dtype` and return it.

    Args:
        checkpoint (`str`): A `checkpoint-<step>` folder of `train_fsdiff.py`.
        output_dir (`str`): Where to save the pipeline.
        dtype (`torch.dtype`, defaults to `torch.float32`): Dtype of the saved weights.
        use_ema (`bool`, defaults to `True`): Export the EMA weights when the checkpoint has them.
        card (`bool`, defaults to `True`): Also write the model card `README.md` into `output_dir`.
        repo_id (`str`, *optional*): The name the card uses for the model; defaults to the name of `output_dir`.
        evaluation, training_data, limitations (`str`, *optional*): Markdown for those sections of the card.
        default_steps (`int`, *optional*): The pipeline's registered `default_num_inference_steps`.
    """
    unet = load_component(checkpoint, "unet", FSDiffUNet2DModel, use_ema)
    encoder = load_component(checkpoint, "clarity_encoder", ClarityMambaEncoder, use_ema)
    prediction_type = unet.config.prediction_type
    pipeline = FSDiffPipeline.from_models(unet, encoder, default_num_inference_steps=default_steps)
    pipeline.to(dtype=dtype)
    pipeline.save_pretrained(output_dir)
    if card:
        pipeline.model_card(
            repo_id or Path(output_dir).resolve().name,
            training=checkpoint_training_details(checkpoint, prediction_type),
            evaluation=evaluation,
            training_data=training_data,
            limitations=limitations,
        ).save(os.path.join(output_dir, "README.md"))
    return pipeline


def main(args: argparse.Namespace) -> None:
    sections = {
        name: None if getattr(args, name) is None else getattr(args, name).read_text(encoding="utf-8")
        for name in ("evaluation", "training_data", "limitations")
    }
    export_checkpoint(
        args.checkpoint,
        args.output_dir,
        DTYPES[args.dtype],
        use_ema=not args.no_ema,
        card=not args.no_card,
        repo_id=args.repo_id,
        default_steps=args.default_steps,
        **sections,
    )
    print(f"Saved the pipeline of {args.checkpoint} to {args.output_dir}")
    if args.card_copy is not None:
        shutil.copyfile(os.path.join(args.output_dir, "README.md"), args.card_copy)
        print(f"Copied its model card to {args.card_copy}")


if __name__ == "__main__":
    main(parse_args())
