#!/usr/bin/env python
"""Train (or fine-tune) an FS-Diff pipeline with Accelerate.

    accelerate launch training/train_fsdiff.py --train_data_dir DATA --resolution 128 --scale 2-8 --output_dir out
    accelerate launch --multi_gpu --num_processes 4 training/train_fsdiff.py ...      # 4 GPUs
    ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node 2 training/train_fsdiff.py ...  # 2 CPU processes

The U-Net learns to denoise the fused HR luminance (the dataset's fused targets, or a classical fusion of the HR
sources by `--teacher`), or with `--diffusion_target residual` its difference from a classical fusion of the
upsampled sources, conditioned on the bicubically re-upsampled degraded sources; the ClarityMambaEncoder is
trained jointly, its clarity head regressing the known degradation strength of each source. Runs resume exactly:
the crops, degradations, noise and timesteps are all drawn from `(seed, epoch / step, index)`.
"""

import argparse
import contextlib
import inspect
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, broadcast_object_list, set_seed
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from huggingface_hub import create_repo, upload_folder
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

if __package__ in (None, ""):  # run as a script: make `training` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fsdiff_diffusers import ClarityMambaEncoder, FSDiffPipeline, FSDiffUNet2DModel, default_scheduler  # noqa: E402
from fsdiff_diffusers.datasets_io import open_dataset, records_from_hf_dataset  # noqa: E402
from fsdiff_diffusers.degradations import DegradationLimits, bicubic_downscale  # noqa: E402
from fsdiff_diffusers.filters import gaussian_blur, sobel  # noqa: E402
from fsdiff_diffusers.fusion import FUSION_METHODS, fuse  # noqa: E402
from fsdiff_diffusers.metrics import evaluate  # noqa: E402
from fsdiff_diffusers.model_card import TRAINING_ARGS_NAME, TrainingDetails  # noqa: E402
from fsdiff_diffusers.models.unet_fsdiff import DIFFUSION_TARGETS  # noqa: E402
from training.dataset import (  # noqa: E402
    EpochShuffleSampler,
    FusionPairDataset,
    parse_scale,
    records_from_folder,
    records_from_splits,
)

logger = get_logger(__name__, log_level="INFO")

COMPONENTS = {FSDiffUNet2DModel: "unet", ClarityMambaEncoder: "clarity_encoder"}
"""Checkpoint sub-folder of each trained model class (their EMA copies go to `<name>_ema`)."""

RANDOM_STATES_NAME = "random_states_{process}.pkl"
"""The file of each process's random state in a checkpoint (written by `Accelerator.save_state`)."""

WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
"""Where launchers put the number of processes they started: torchrun / `accelerate launch --multi_gpu`, MPI."""

# Metrics logged at validation (those that work on crops as small as 11x11; VIF and MS-SSIM need larger images).
VALIDATION_METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "Qabf", "SSIM")


MODEL_SIZE_FLAGS = {
    "unet_channels": (FSDiffUNet2DModel, "block_out_channels", "U-Net channels per level."),
    "encoder_channels": (ClarityMambaEncoder, "block_out_channels", "Encoder channels per U-Net level."),
    "context_dim": (ClarityMambaEncoder, "context_dim", "Width of the context tokens (the U-Net's cross-attention)."),
    "attention_head_dim": (FSDiffUNet2DModel, "attention_head_dim", "Channels per cross-attention head."),
    "unet_norm_groups": (FSDiffUNet2DModel, "norm_num_groups", "GroupNorm groups of the U-Net."),
    "encoder_norm_groups": (ClarityMambaEncoder, "norm_num_groups", "GroupNorm groups per modality of the encoder."),
    "num_mamba_layers": (ClarityMambaEncoder, "num_mamba_layers", "Bidirectional Mamba blocks of the encoder."),
}
"""Flags that size a new model: the class and `__init__` argument each one sets, and its help. Unset, a flag takes
that argument's default, so the defaults live in the model classes only."""


def channels(text: str) -> tuple[int, ...]:
    """`"48,96,144,192"` -> `(48, 96, 144, 192)`."""
    return tuple(int(part) for part in text.split(","))


def class_default(model_cls: type, argument: str) -> Any:
    """The default of `argument` in `model_cls.__init__`."""
    return inspect.signature(model_cls.__init__).parameters[argument].default


def model_size(args: argparse.Namespace) -> dict[str, Any]:
    """The value of each model-size flag: as given, or its model class's default."""
    return {
        flag: class_default(model_cls, argument) if getattr(args, flag) is None else getattr(args, flag)
        for flag, (model_cls, argument, _) in MODEL_SIZE_FLAGS.items()
    }


def parse_args(input_args: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train an FS-Diff fusion + super-resolution pipeline.")
    data = parser.add_argument_group("data")
    data.add_argument(
        "--train_data_dir",
        type=str,
        default=None,
        help="A folder with ir/ and vi/ (+ optional fused/) matched by file name, or a folder with "
        "splits.json (the shared data layout: its train split is used).",
    )
    data.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help="A `datasets` dataset: a Hub name, or a folder loaded with `imagefolder`.",
    )
    data.add_argument("--dataset_config_name", type=str, default=None)
    data.add_argument("--splits_group", type=str, default="infrared_visible", help="Group of splits.json to train on.")
    data.add_argument("--infrared_column", type=str, default="infrared")
    data.add_argument("--visible_column", type=str, default="visible")
    data.add_argument("--target_column", type=str, default=None, help="Column of fused HR targets, if any.")
    data.add_argument(
        "--skip_broken_pairs",
        action="store_true",
        help="Leave out (with a warning) pairs that are unmatched, undecodable or differ in size.",
    )
    data.add_argument("--resolution", type=int, default=128, help="Side of the square HR training crops.")
    data.add_argument("--scale", type=str, default="4", help="Downscale factor, or a range such as 2-8.")
    data.add_argument(
        "--max_blur_sigma",
        type=float,
        default=DegradationLimits.max_blur_sigma,
        help="Largest Gaussian blur (HR pixels) drawn per modality before the downscale.",
    )
    data.add_argument(
        "--max_noise_std",
        type=float,
        default=DegradationLimits.max_noise_std,
        help="Largest Gaussian noise (on the [0, 1] scale) drawn per modality after the downscale.",
    )
    data.add_argument(
        "--clean_probability",
        type=float,
        default=DegradationLimits.clean_probability,
        help="Chance that a modality gets no blur and no noise.",
    )
    data.add_argument("--no_random_flip", action="store_true")
    data.add_argument(
        "--cache_images",
        action="store_true",
        help="Keep decoded pairs in memory (float16 luminance) so that only the first epoch decodes files.",
    )
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    model = parser.add_argument_group("model")
    model.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Fine-tune a saved FSDiffPipeline (folder or Hub id) instead of starting from scratch.",
    )
    for flag, (model_cls, argument, description) in MODEL_SIZE_FLAGS.items():
        default = class_default(model_cls, argument)
        is_tuple = isinstance(default, tuple)
        model.add_argument(
            f"--{flag}",
            type=channels if is_tuple else type(default),
            default=None,
            help=f"{description} Default: {','.join(map(str, default)) if is_tuple else default} "
            f"(`{argument}` of {model_cls.__name__}); ignored when fine-tuning.",
        )
    model.add_argument(
        "--prediction_type",
        type=str,
        default="epsilon",
        choices=("epsilon", "sample", "v_prediction"),
        help="What the U-Net predicts (epsilon in the paper); ignored when fine-tuning a saved pipeline.",
    )
    model.add_argument(
        "--diffusion_target",
        type=str,
        default=None,
        choices=DIFFUSION_TARGETS,
        help="What the U-Net diffuses: the fused image (default for a new model, as in the paper) or its residual over "
        "a classical fusion of the upsampled sources (--residual_base). Given when fine-tuning a pipeline of the other "
        "target, the U-Net is switched to this one (its output layer is zeroed, so training starts from the base).",
    )
    model.add_argument(
        "--residual_base",
        type=str,
        default=class_default(FSDiffUNet2DModel, "residual_base"),
        choices=FUSION_METHODS,
        help="Fusion rule of the base of a residual U-Net.",
    )
    model.add_argument(
        "--residual_scale",
        type=float,
        default=class_default(FSDiffUNet2DModel, "residual_scale"),
        help="A residual U-Net diffuses the residual (in [-1, 1] units) divided by this.",
    )

    loss = parser.add_argument_group("objective")
    loss.add_argument(
        "--teacher",
        type=str,
        default="gff",
        choices=FUSION_METHODS,
        help="Fusion rule that makes the HR target when the data has no fused targets.",
    )
    loss.add_argument("--loss", type=str, default="l1", choices=("l1", "mse"), help="Denoising loss (L1 in the paper).")
    loss.add_argument("--clarity_loss_weight", type=float, default=0.1)
    loss.add_argument(
        "--fusion_loss_weight",
        type=float,
        default=0.0,
        help="Weight of intensity + gradient losses of the predicted x0 against the HR sources.",
    )
    loss.add_argument(
        "--ssim_loss_weight",
        type=float,
        default=0.0,
        help="Weight of 1 - SSIM of the predicted x0 against each HR source (the mean of the two), which keeps each "
        "source's local structure where the intensity + gradient loss keeps only the stronger one.",
    )

    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", type=str, default="fsdiff-model")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--train_batch_size",
        type=int,
        default=16,
        help="Pairs per process and micro-batch: an optimizer step sees this x processes x "
        "--gradient_accumulation_steps pairs.",
    )
    train.add_argument("--num_train_epochs", type=int, default=100)
    train.add_argument(
        "--max_train_steps",
        type=int,
        default=None,
        help="Optimizer steps, whatever the number of processes (--lr_warmup_steps too); overrides --num_train_epochs.",
    )
    train.add_argument("--gradient_accumulation_steps", type=int, default=1)
    train.add_argument("--gradient_checkpointing", action="store_true")
    train.add_argument("--learning_rate", type=float, default=1e-4)
    train.add_argument("--lr_scheduler", type=str, default="cosine")
    train.add_argument("--lr_warmup_steps", type=int, default=500)
    train.add_argument("--adam_weight_decay", type=float, default=1e-2)
    train.add_argument("--max_grad_norm", type=float, default=1.0)
    train.add_argument("--use_ema", action="store_true")
    train.add_argument("--ema_max_decay", type=float, default=0.9999)
    train.add_argument(
        "--mixed_precision",
        type=str,
        default=None,
        choices=("no", "fp16", "bf16"),
        help="Autocast precision; bf16 is faster on CPUs with AVX512-BF16, at the same loss (benchmarks/RESULTS.md).",
    )
    train.add_argument(
        "--channels_last", action="store_true", help="Keep the models and their inputs in channels-last memory format."
    )
    train.add_argument(
        "--torch_compile",
        action="store_true",
        help="Compile the U-Net and the encoder with torch.compile (inductor). On a CPU the first step compiles for "
        "minutes (6.7 min for the test suite's tiny model on a 2-core machine): worth it for long runs only.",
    )
    train.add_argument("--report_to", type=str, default="tensorboard", help="tensorboard, wandb, all or none.")
    train.add_argument("--logging_dir", type=str, default="logs")
    train.add_argument("--checkpointing_steps", type=int, default=500)
    train.add_argument(
        "--checkpoints_total_limit",
        type=int,
        default=None,
        help="Keep the newest this many checkpoints: the oldest is deleted once a new one is complete.",
    )
    train.add_argument("--resume_from_checkpoint", type=str, default=None, help='A checkpoint folder or "latest".')
    train.add_argument(
        "--validation_steps",
        type=int,
        default=None,
        help="Fuse validation pairs (the validation split of splits.json, else training pairs) every this many steps "
        "and log their images and mean metrics.",
    )
    train.add_argument("--num_validation_images", type=int, default=2)
    train.add_argument("--push_to_hub", action="store_true")
    train.add_argument("--hub_model_id", type=str, default=None)
    train.add_argument("--hub_token", type=str, default=None)

    args = parser.parse_args(input_args)
    if args.report_to in ("wandb", "all") and args.hub_token is not None:
        parser.error("--hub_token would be logged to wandb: log in with `hf auth login` instead.")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        parser.error("--checkpoints_total_limit must be at least 1.")
    if (args.train_data_dir is None) == (args.dataset_name is None):
        parser.error("Pass exactly one of --train_data_dir and --dataset_name.")
    try:
        args.scale_range = parse_scale(args.scale)
    except ValueError as error:
        parser.error(str(error))
    return args


def build_dataset(args: argparse.Namespace) -> FusionPairDataset:
    """The training pairs of `--train_data_dir` (folder or splits.json) or `--dataset_name`."""
    if args.dataset_name is not None:
        dataset = open_dataset(args.dataset_name, config_name=args.dataset_config_name, split="train")
        records = records_from_hf_dataset(dataset, args.infrared_column, args.visible_column, args.target_column)
    elif (Path(args.train_data_dir) / "splits.json").is_file():
        records = records_from_splits(args.train_data_dir, args.splits_group, "train")
    else:
        records = records_from_folder(args.train_data_dir, skip_broken=args.skip_broken_pairs)
    return FusionPairDataset(
        records,
        resolution=args.resolution,
        scale=args.scale_range,
        limits=DegradationLimits(
            max_blur_sigma=args.max_blur_sigma,
            max_noise_std=args.max_noise_std,
            max_scale=max(DegradationLimits.max_scale, args.scale_range[1]),
            clean_probability=args.clean_probability,
        ),
        seed=args.seed,
        random_flip=not args.no_random_flip,
        skip_broken=args.skip_broken_pairs,
        cache_images=args.cache_images,
    )


def build_validation_dataset(args: argparse.Namespace, train_dataset: FusionPairDataset) -> FusionPairDataset:
    """
    The pairs `validate` fuses: `--num_validation_images` pairs spread evenly over the validation split of
    `splits.json` when `--train_data_dir` has one, else over the training pairs (a folder or a `datasets` dataset has
    no held-out split). One fixed crop of each (the dataset's epoch 0, no flips).
    """
    if args.train_data_dir is not None and (Path(args.train_data_dir) / "splits.json").is_file():
        records = records_from_splits(args.train_data_dir, args.splits_group, "validation")
    else:
        records = train_dataset.records
    count = min(args.num_validation_images, len(records))
    chosen = [records[index * len(records) // count] for index in range(count)]
    return FusionPairDataset(
        chosen, resolution=args.resolution, scale=args.scale_range, seed=args.seed, random_flip=False
    )


def build_models(args: argparse.Namespace) -> tuple[FSDiffUNet2DModel, ClarityMambaEncoder]:
    """The U-Net and encoder of `--pretrained_model_name_or_path`, or new ones of the requested sizes."""
    if args.pretrained_model_name_or_path:
        pipeline = FSDiffPipeline.from_pretrained(args.pretrained_model_name_or_path)
        if pipeline.clarity_encoder.config.semantic_embed_dim is not None:
            raise ValueError("Fine-tuning a pipeline with a semantic (CLIP) encoder is not supported by this script.")
        ignored = [f"--{flag}" for flag in MODEL_SIZE_FLAGS if getattr(args, flag) is not None]
        if ignored:
            logger.warning(f"Ignoring {', '.join(ignored)}: fine-tuning keeps the sizes of the saved models.")
        if args.diffusion_target is not None:
            switch_diffusion_target(pipeline.unet, args)
        return pipeline.unet, pipeline.clarity_encoder
    size = model_size(args)
    levels = len(size["unet_channels"])
    if len(size["encoder_channels"]) != levels:
        raise ValueError(
            f"--encoder_channels needs one entry per U-Net level ({levels}), got {size['encoder_channels']}."
        )
    unet = FSDiffUNet2DModel(
        block_out_channels=size["unet_channels"],
        cross_attention_levels=tuple(level >= levels - 2 for level in range(levels)),
        mamba_levels=(False,) * levels,
        cross_attention_dim=size["context_dim"],
        attention_head_dim=size["attention_head_dim"],
        encoder_feature_channels=size["encoder_channels"],
        norm_num_groups=size["unet_norm_groups"],
        prediction_type=args.prediction_type,
        diffusion_target=args.diffusion_target or class_default(FSDiffUNet2DModel, "diffusion_target"),
        residual_base=args.residual_base,
        residual_scale=args.residual_scale,
    )
    encoder = ClarityMambaEncoder(
        block_out_channels=size["encoder_channels"],
        clarity_level=min(2, levels - 1),
        num_mamba_layers=size["num_mamba_layers"],
        context_dim=size["context_dim"],
        context_grid=min(4, max(1, args.resolution // 2**levels)),
        norm_num_groups=size["encoder_norm_groups"],
    )
    return unet, encoder


def switch_diffusion_target(unet: FSDiffUNet2DModel, args: argparse.Namespace) -> None:
    """
    Give a loaded U-Net the diffusion target of `args` (`--diffusion_target`, `--residual_base`,
    `--residual_scale`). When what it diffuses changes, its output layer is zeroed: a residual model then starts at its
    base instead of adding the old model's fused image to it.
    """
    target = {
        "diffusion_target": args.diffusion_target,
        "residual_base": args.residual_base,
        "residual_scale": args.residual_scale,
    }
    if all(unet.config.get(key) == value for key, value in target.items()):
        return
    logger.info(f"Switching the U-Net's diffusion target from {unet.config.diffusion_target!r} to {target}.")
    unet.register_to_config(**target)
    with torch.no_grad():
        unet.conv_out.weight.zero_()
        unet.conv_out.bias.zero_()


def check_process_count(accelerator: Accelerator) -> None:
    """
    Stop, or warn, when the launcher was asked for several processes but Accelerate trains in one.

    Raises a `RuntimeError` when a launcher started several processes (`WORLD_SIZE`, or MPI's size, above the
    Accelerator's `num_processes`) that do not form one run, as `torchrun` on a machine without GPUs and without
    `ACCELERATE_USE_CPU=1` does: each would train alone and write the same `--output_dir`. Warns when `accelerate
    launch` was given `--num_processes` (or `--num_machines`) above 1 but started one process, as it does with
    `--cpu` (several CPU processes only through MPI, `--mpirun_hostfile`) or without `--multi_gpu` on a machine with
    one GPU: it then sets `MASTER_ADDR` / `MASTER_PORT` but no world size.
    """
    env = os.environ
    launched = next((int(env[name]) for name in WORLD_SIZE_VARIABLES if env.get(name)), None)
    if launched is not None and launched > accelerator.num_processes:
        raise RuntimeError(
            f"The launcher started {launched} processes, but each trains alone (Accelerate sees "
            f"{accelerator.num_processes} process, {accelerator.distributed_type}) and all would write --output_dir. "
            f"On CPUs, set ACCELERATE_USE_CPU=1: `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node {launched} "
            "training/train_fsdiff.py ...`."
        )
    if launched is None and accelerator.num_processes == 1 and "ACCELERATE_USE_CPU" in env and "MASTER_PORT" in env:
        logger.warning(
            "`accelerate launch` was asked for several processes but started this one only: with --cpu it starts "
            "one unless given an MPI hostfile (--mpirun_hostfile), and without --multi_gpu it starts one on a machine "
            "with fewer than two GPUs. Training goes on in 1 process. For several processes use `accelerate launch "
            "--multi_gpu --num_processes N ...` on GPUs, and `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N "
            "training/train_fsdiff.py ...` on CPUs."
        )


def describe_hardware(accelerator: Accelerator) -> str:
    """The devices of a run, such as `"2 x NVIDIA H100 80GB HBM3"` or `"1 x CPU (2 threads)"`."""
    device = accelerator.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        threads = torch.get_num_threads()
        name = f"CPU ({threads} thread{'s' * (threads != 1)})"
    else:
        name = device.type.upper()
    return f"{accelerator.num_processes} x {name}"


def describe_duration(seconds: float, first_step: int) -> str:
    """Wall-clock time of a training session for its model card; a resumed session says from which step it ran."""
    text = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
    return f"{text} (resumed at step {first_step}; earlier sessions not counted)" if first_step else text


def training_scheduler() -> DDPMScheduler:
    """The forward (noising) process: the betas of the pipeline's `default_scheduler()`."""
    return DDPMScheduler.from_config(default_scheduler().config)


def step_generator(seed: int, step: int, process_index: int, device: torch.device) -> torch.Generator:
    """The noise / timestep stream of one micro-batch: a function of `(seed, step, process)` only."""
    return torch.Generator(device=device).manual_seed(hash((seed, step, process_index)) % (2**63))


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-<step>` folders of a run, oldest first (not the `checkpoint-<step>.tmp` ones being written)."""
    folders = [path for path in Path(output_dir).glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", path.name)]
    return sorted(folders, key=lambda path: int(path.name.split("-")[1]))


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """`|Gx| + |Gy|` of `images` `(B, C, H, W)` (the package's 3x3 Sobel filters, replicated borders); same shape."""
    gx, gy = sobel(images, border="replicate")
    return gx.abs() + gy.abs()


def fusion_loss(x0: torch.Tensor, sources: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""
    Intensity + gradient loss of a fused estimate against its sources (the usual unsupervised fusion loss).

    Args:
        x0 (`torch.Tensor` of shape `(B, 1, H, W)`): Predicted fused luminance in [0, 1].
        sources (`torch.Tensor` of shape `(B, 2, H, W)`): HR source luminance in [0, 1].
        weights (`torch.Tensor` of shape `(B,)`): Per-sample weights (`alpha_bar_t`: x0 is only meaningful at low
            noise levels).
    """
    intensity = (x0 - sources.amax(dim=1, keepdim=True)).abs().mean(dim=(1, 2, 3))
    source_gradients = sobel_magnitude(sources).amax(dim=1, keepdim=True)
    gradient = (sobel_magnitude(x0) - source_gradients).abs().mean(dim=(1, 2, 3))
    return ((intensity + gradient) * weights).mean()


def structural_loss(x0: torch.Tensor, sources: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""
    `1 - SSIM` of a fused estimate against each of its sources, averaged over the two: the SSIM of the package's
    metric (Gaussian window of 11 taps, sigma 1.5, `C1 = 0.01^2`, `C2 = 0.03^2` for images in [0, 1]), as local maps
    averaged over the image.

    Args:
        x0 (`torch.Tensor` of shape `(B, 1, H, W)`): Predicted fused luminance in [0, 1].
        sources (`torch.Tensor` of shape `(B, 2, H, W)`): HR source luminance in [0, 1].
        weights (`torch.Tensor` of shape `(B,)`): Per-sample weights (`alpha_bar_t`, as for `fusion_loss`).
    """
    c1, c2 = 0.01**2, 0.03**2
    x0, sources = x0.float(), sources.float()
    mean_x, mean_s = gaussian_blur(x0, 5, 1.5), gaussian_blur(sources, 5, 1.5)
    var_x = gaussian_blur(x0 * x0, 5, 1.5) - mean_x**2
    var_s = gaussian_blur(sources * sources, 5, 1.5) - mean_s**2
    covariance = gaussian_blur(x0 * sources, 5, 1.5) - mean_x * mean_s
    ssim = ((2 * mean_x * mean_s + c1) * (2 * covariance + c2)) / ((mean_x**2 + mean_s**2 + c1) * (var_x + var_s + c2))
    return ((1 - ssim.mean(dim=(1, 2, 3))) * weights).mean()


def diffusion_targets(
    scheduler: DDPMScheduler, prediction_type: str, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the U-Net must predict for its `prediction_type`."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    return x0


def predicted_x0(
    scheduler: DDPMScheduler,
    prediction_type: str,
    noisy: torch.Tensor,
    prediction: torch.Tensor,
    alpha_bar: torch.Tensor,
) -> torch.Tensor:
    """The clean sample implied by a prediction; `alpha_bar` of shape `(B, 1, 1, 1)`."""
    if prediction_type == "epsilon":
        return (noisy - (1 - alpha_bar).sqrt() * prediction) / alpha_bar.sqrt()
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * prediction
    return prediction


class Trainer:
    """One training run: the models, their EMA copies, the data and the Accelerate state."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        logging_dir = Path(args.output_dir, args.logging_dir)
        self.accelerator = Accelerator(
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            mixed_precision=args.mixed_precision,
            dynamo_backend="inductor" if args.torch_compile else None,
            log_with=None if args.report_to == "none" else args.report_to,
            project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=logging_dir),
        )
        logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
        check_process_count(self.accelerator)
        set_seed(args.seed)
        self.unet, self.encoder = build_models(args)
        if args.resolution % self.unet.downsample_factor:
            stride = self.unet.downsample_factor
            raise ValueError(f"--resolution must be a multiple of the U-Net's stride {stride}, got {args.resolution}.")
        if args.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        for model in (self.unet, self.encoder):
            model.to(memory_format=self.memory_format)
        self.emas = {}
        if args.use_ema:
            for model in (self.unet, self.encoder):
                self.emas[COMPONENTS[type(model)]] = EMAModel(
                    model.parameters(),
                    decay=args.ema_max_decay,
                    use_ema_warmup=True,
                    inv_gamma=1.0,
                    power=3 / 4,
                    model_cls=type(model),
                    model_config=model.config,
                )
        self.noise_scheduler = training_scheduler()
        self.repo_id = args.hub_model_id or Path(args.output_dir).name
        if args.push_to_hub and self.accelerator.is_main_process:  # early, so that a bad token fails before training
            self.repo_id = create_repo(self.repo_id, exist_ok=True, token=args.hub_token).repo_id
        self.dataset = build_dataset(args)
        self.validation_dataset = build_validation_dataset(args, self.dataset) if args.validation_steps else None
        self.training_args = self.run_record()
        if self.accelerator.is_main_process:
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            Path(args.output_dir, TRAINING_ARGS_NAME).write_text(json.dumps(self.training_args, indent=2))
        self.accelerator.register_save_state_pre_hook(self.save_model_hook)
        self.accelerator.register_load_state_pre_hook(self.load_model_hook)

    def run_record(self) -> dict[str, Any]:
        """
        What `training_args.json` records: the arguments (less the Hub token) and the facts of the run that model
        cards need (`num_processes`, `hardware`, `fused_targets`), so that any checkpoint of the run can be carded.
        """
        record = {name: value for name, value in vars(self.args).items() if name != "hub_token"}
        record.update(
            num_processes=self.accelerator.num_processes,
            hardware=describe_hardware(self.accelerator),
            fused_targets=self.dataset.has_targets,
        )
        return record

    # Checkpoints -------------------------------------------------------------------------------------------------

    def save_model_hook(self, models: list, weights: list, output_dir: str) -> None:
        """Write each model (and its EMA copy) with `save_pretrained` instead of Accelerate's raw state dicts."""
        if self.accelerator.is_main_process:
            for name, ema in self.emas.items():
                ema.save_pretrained(os.path.join(output_dir, f"{name}_ema"))
            for model in models:
                model = self.accelerator.unwrap_model(model)
                model.save_pretrained(os.path.join(output_dir, COMPONENTS[type(model)]))
                weights.pop()

    def load_model_hook(self, models: list, input_dir: str) -> None:
        """Load what [`save_model_hook`] wrote into the models being trained and their EMA copies."""
        classes = {name: model_cls for model_cls, name in COMPONENTS.items()}
        for name, ema in self.emas.items():
            loaded = EMAModel.from_pretrained(os.path.join(input_dir, f"{name}_ema"), model_cls=classes[name])
            ema.load_state_dict(loaded.state_dict())
            ema.to(self.accelerator.device)
        while models:
            model = models.pop()
            unwrapped = self.accelerator.unwrap_model(model)
            loaded = type(unwrapped).from_pretrained(input_dir, subfolder=COMPONENTS[type(unwrapped)])
            unwrapped.register_to_config(**loaded.config)
            unwrapped.load_state_dict(loaded.state_dict())

    def prune_checkpoints(self) -> None:
        """Delete the oldest `checkpoint-<step>` folders beyond `--checkpoints_total_limit` (main process only)."""
        limit = self.args.checkpoints_total_limit
        if limit is None:
            return
        for old in list_checkpoints(self.args.output_dir)[:-limit]:
            logger.info(f"Removing checkpoint {old} (--checkpoints_total_limit {limit})")
            shutil.rmtree(old)

    def save_checkpoint(self, global_step: int) -> None:
        """
        Save `checkpoint-<global_step>` so that it is never seen half-written: every process writes its part (the main
        process the models, optimizer and scheduler, each process its `random_states_<process>.pkl`) into
        `checkpoint-<global_step>.tmp`; once all have finished, the main process checks that every process's random
        state is there, renames the folder and only then deletes the checkpoints beyond the limit.
        """
        accelerator = self.accelerator
        final = Path(self.args.output_dir, f"checkpoint-{global_step}")
        partial = final.with_name(f"{final.name}.tmp")
        if accelerator.is_main_process and partial.exists():
            shutil.rmtree(partial)  # left by an interrupted save
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return
        names = [RANDOM_STATES_NAME.format(process=index) for index in range(accelerator.num_processes)]
        missing = [name for name in names if not (partial / name).is_file()]
        if missing:
            raise RuntimeError(
                f"{partial} lacks {', '.join(missing)}: --output_dir must be a folder that every process writes to "
                "(on several machines, a shared filesystem)."
            )
        if final.exists():  # saved before by the run this one resumed
            shutil.rmtree(final)
        partial.rename(final)
        self.prune_checkpoints()

    def missing_files(self, checkpoint: Path) -> list[str]:
        """What a checkpoint needs for this run to resume from it and lacks: empty when it is complete."""
        files = ("optimizer.bin", "scheduler.bin", RANDOM_STATES_NAME.format(process=0))
        missing = [name for name in files if not (checkpoint / name).is_file()]
        folders = [*COMPONENTS.values(), *(f"{name}_ema" for name in self.emas)]
        for folder in folders:
            if not (checkpoint / folder / "config.json").is_file():
                missing.append(f"{folder}/config.json")
            if not any((checkpoint / folder).glob("diffusion_pytorch_model*.safetensors")):
                missing.append(f"{folder}/diffusion_pytorch_model.safetensors")
        return missing

    def checkpoint_to_resume(self, name: str) -> Path | None:
        """
        The checkpoint `--resume_from_checkpoint` names: a folder name, or "latest" for the newest complete
        `checkpoint-<step>` of `--output_dir` (incomplete ones, left by older versions of this script, are skipped
        with a warning; `None` when there is none). A named checkpoint that is missing or incomplete is an error.
        """
        if name == "latest":
            for checkpoint in reversed(list_checkpoints(self.args.output_dir)):
                missing = self.missing_files(checkpoint)
                if not missing:
                    return checkpoint
                logger.warning(f"Skipping {checkpoint}: it is incomplete (no {', '.join(missing)}).")
            return None
        checkpoint = Path(self.args.output_dir, Path(name).name)
        if not checkpoint.is_dir():
            raise FileNotFoundError(f"Checkpoint '{checkpoint}' does not exist.")
        missing = self.missing_files(checkpoint)
        if missing:
            raise FileNotFoundError(f"Checkpoint '{checkpoint}' is incomplete: it has no {', '.join(missing)}.")
        return checkpoint

    def resume(self) -> int:
        """
        Load `--resume_from_checkpoint` and return its global step (0 without one). The main process chooses the
        checkpoint and tells the others, so that all of them load the same one.
        """
        name = self.args.resume_from_checkpoint
        if name is None:
            return 0
        checkpoint, error = None, None
        if self.accelerator.is_main_process:
            try:
                checkpoint = self.checkpoint_to_resume(name)
            except FileNotFoundError as raised:
                error = str(raised)
        checkpoint, error = broadcast_object_list([checkpoint, error])
        if error is not None:
            raise FileNotFoundError(error)
        if checkpoint is None:
            logger.info("No checkpoint to resume from: starting a new run.")
            return 0
        saved_by = len(list(checkpoint.glob(RANDOM_STATES_NAME.format(process="*"))))
        if saved_by != self.accelerator.num_processes:
            logger.warning(
                f"{checkpoint} was saved by {saved_by} process(es) and this run has {self.accelerator.num_processes}: "
                "each process now draws other batches, so the run does not replay the interrupted one exactly."
            )
        logger.info(f"Resuming from {checkpoint}")
        self.accelerator.load_state(str(checkpoint))
        return int(checkpoint.name.split("-")[1])

    # Training ----------------------------------------------------------------------------------------------------

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The denoising, clarity and (optional) fusion losses of one batch."""
        args, scheduler = self.args, self.noise_scheduler
        sources = batch["sources"]
        target = batch["target"] if "target" in batch else fuse(sources[:, :1], sources[:, 1:], args.teacher)
        conditions = (batch["conditions"] * 2 - 1).contiguous(memory_format=self.memory_format)
        unet = self.accelerator.unwrap_model(self.unet)
        base = unet.residual_base(conditions)
        x0 = unet.to_sample(target * 2 - 1, base)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        timesteps = torch.randint(
            0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device
        )
        noisy = scheduler.add_noise(x0, noise, timesteps)

        context, features, clarity, _ = self.encoder(conditions, return_dict=False)
        model_input = torch.cat([noisy, conditions], dim=1).contiguous(memory_format=self.memory_format)
        prediction = self.unet(model_input, timesteps, context, features, return_dict=False)[0]
        prediction_type = unet.config.prediction_type
        expected = diffusion_targets(scheduler, prediction_type, x0, noise, timesteps)
        loss_fn = F.l1_loss if args.loss == "l1" else F.mse_loss
        losses = {"denoising": loss_fn(prediction.float(), expected.float())}
        labels = batch["clarity"].float()[:, :, None, None].expand_as(clarity)
        losses["clarity"] = F.binary_cross_entropy(clarity.float(), labels)
        if args.fusion_loss_weight > 0 or args.ssim_loss_weight > 0:
            alpha_bar = scheduler.alphas_cumprod.to(x0.device)[timesteps].view(-1, 1, 1, 1)
            x0_estimate = predicted_x0(scheduler, prediction_type, noisy, prediction.float(), alpha_bar)
            estimate = (unet.to_image(x0_estimate, base) + 1) / 2
            if args.fusion_loss_weight > 0:
                losses["fusion"] = fusion_loss(estimate, sources, alpha_bar.flatten())
            if args.ssim_loss_weight > 0:
                losses["ssim"] = structural_loss(estimate, sources, alpha_bar.flatten())
        weights = {
            "denoising": 1.0,
            "clarity": args.clarity_loss_weight,
            "fusion": args.fusion_loss_weight,
            "ssim": args.ssim_loss_weight,
        }
        losses["total"] = sum(weights[name] * value for name, value in losses.items())
        return losses

    def train(self) -> None:
        args, accelerator = self.args, self.accelerator
        sampler = EpochShuffleSampler(len(self.dataset), seed=args.seed)
        dataloader = DataLoader(
            self.dataset,
            batch_size=args.train_batch_size,
            sampler=sampler,
            num_workers=args.dataloader_num_workers,
            drop_last=len(self.dataset) >= args.train_batch_size * accelerator.num_processes,
        )
        # Prepared first: with several processes each one gets its share of the batches, which sets the epoch length.
        dataloader = accelerator.prepare(dataloader)
        updates_per_epoch = math.ceil(len(dataloader) / args.gradient_accumulation_steps)
        max_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch
        num_epochs = math.ceil(max_steps / updates_per_epoch)
        params = [*self.unet.parameters(), *self.encoder.parameters()]
        optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.adam_weight_decay)
        lr_scheduler = get_scheduler(  # a prepared scheduler steps once per process at each optimizer step
            args.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=max_steps * accelerator.num_processes,
        )
        self.unet, self.encoder, optimizer, lr_scheduler = accelerator.prepare(
            self.unet, self.encoder, optimizer, lr_scheduler
        )
        for ema in self.emas.values():
            ema.to(accelerator.device)
        if accelerator.is_main_process and accelerator.log_with:
            accelerator.init_trackers("fsdiff", config={k: str(v) for k, v in vars(args).items()})

        global_step = self.resume()
        first_step, start_time = global_step, time.monotonic()
        first_epoch = global_step // updates_per_epoch
        skip_batches = (global_step % updates_per_epoch) * args.gradient_accumulation_steps
        logger.info(
            f"{len(self.dataset)} pairs, {max_steps} steps, {num_epochs} epochs, starting at step {global_step}"
        )
        progress = tqdm(
            range(max_steps), initial=global_step, desc="Steps", disable=not accelerator.is_local_main_process
        )

        for epoch in range(first_epoch, num_epochs):
            self.unet.train()
            self.encoder.train()
            skip = skip_batches if epoch == first_epoch else 0
            loader = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
            loader.set_epoch(epoch)  # Accelerate's epoch counter, which it passes on again at each iteration...
            sampler.set_epoch(epoch)  # ...but to the sampler or the dataset only, depending on how the loader is
            self.dataset.set_epoch(epoch)  # wrapped (several processes, skipped batches): the epoch's order and crops
            for step, batch in enumerate(loader, start=skip):
                generator = step_generator(
                    args.seed, epoch * len(dataloader) + step, accelerator.process_index, accelerator.device
                )
                with accelerator.accumulate(self.unet, self.encoder):
                    losses = self.loss(batch, generator)
                    accelerator.backward(losses["total"])
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(params, args.max_grad_norm)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()
                if not accelerator.sync_gradients:
                    continue
                models = self.models()
                for name, ema in self.emas.items():
                    ema.step(models[name].parameters())
                global_step += 1
                progress.update(1)
                logs = {f"loss/{name}": value.detach().item() for name, value in losses.items()}
                logs["lr"] = lr_scheduler.get_last_lr()[0]
                progress.set_postfix(loss=logs["loss/total"])
                accelerator.log(logs, step=global_step)
                if global_step % args.checkpointing_steps == 0:
                    self.save_checkpoint(global_step)
                if args.validation_steps and global_step % args.validation_steps == 0 and accelerator.is_main_process:
                    self.validate(global_step)
                if global_step >= max_steps:
                    break
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            self.save_pipeline(global_step, describe_duration(time.monotonic() - start_time, first_step))
        accelerator.end_training()

    # Outputs -----------------------------------------------------------------------------------------------------

    def models(self) -> dict[str, FSDiffUNet2DModel | ClarityMambaEncoder]:
        """The trained models, unwrapped, by component name."""
        return {
            "unet": self.accelerator.unwrap_model(self.unet),
            "clarity_encoder": self.accelerator.unwrap_model(self.encoder),
        }

    @contextlib.contextmanager
    def inference_models(self) -> Iterator[dict[str, FSDiffUNet2DModel | ClarityMambaEncoder]]:
        """The models as a pipeline needs them: with their EMA weights (when EMA is on), restored afterwards."""
        models = self.models()
        for name, ema in self.emas.items():
            ema.store(models[name].parameters())
            ema.copy_to(models[name].parameters())
        try:
            yield models
        finally:
            for name, ema in self.emas.items():
                ema.restore(models[name].parameters())

    def validate(self, global_step: int) -> None:
        """
        Fuse the validation pairs (downscaled by the middle of the scale range); log the images to tensorboard and the
        mean fusion metrics against the HR sources to every tracker.
        """
        dataset = self.validation_dataset
        sources = torch.stack([dataset[index]["sources"] for index in range(len(dataset))])
        low_resolution = bicubic_downscale(sources, sum(self.args.scale_range) / 2)
        generator = torch.Generator(device=self.accelerator.device).manual_seed(self.args.seed)
        with self.inference_models() as models:
            pipeline = FSDiffPipeline.from_models(**models)
            pipeline.set_progress_bar_config(disable=True)
            images = pipeline(
                list(low_resolution[:, :1]),
                list(low_resolution[:, 1:]),
                output_size=(self.args.resolution, self.args.resolution),
                generator=generator,
                output_type="np",
            ).images
        scores = [
            evaluate(fused[..., 0] * 255, ir * 255, vi * 255, metrics=VALIDATION_METRICS)
            for fused, (ir, vi) in zip(images, sources.numpy())
        ]
        self.accelerator.log(
            {f"validation/{name}": sum(s[name] for s in scores) / len(scores) for name in VALIDATION_METRICS},
            step=global_step,
        )
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_images("validation", images, global_step, dataformats="NHWC")

    def save_pipeline(self, global_step: int, training_time: str | None = None) -> None:
        """Save the final pipeline (EMA weights if EMA is on) and its model card; upload both with `--push_to_hub`."""
        args = self.args
        models = self.models()
        for name, ema in self.emas.items():
            ema.copy_to(models[name].parameters())
        pipeline = FSDiffPipeline.from_models(**models)
        pipeline.save_pretrained(args.output_dir)
        prediction_type = pipeline.unet.config.prediction_type
        training = TrainingDetails.from_training_args(self.training_args, global_step, prediction_type, training_time)
        pipeline.model_card(self.repo_id, training=training).save(os.path.join(args.output_dir, "README.md"))
        if args.push_to_hub:
            upload_folder(
                repo_id=self.repo_id,
                folder_path=args.output_dir,
                commit_message="End of training",
                ignore_patterns=["checkpoint-*", f"{args.logging_dir}/*"],
                token=args.hub_token,
            )


def main(args: argparse.Namespace) -> None:
    Trainer(args).train()


if __name__ == "__main__":
    main(parse_args())
