"""
Model cards of FS-Diff pipelines: one template (`templates/model_card.md`), rendered here and nowhere else.

```py
>>> from fsdiff_diffusers.model_card import model_card

>>> model_card(pipe, "org/fsdiff-ir-vis", evaluation=open("scores.md").read()).save("README.md")
```
"""

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCard

if TYPE_CHECKING:
    from .pipelines.pipeline_fsdiff import FSDiffPipeline

MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"
"""The card template: markdown with YAML front matter and `${slot}` placeholders (`string.Template` syntax)."""

TRAINING_ARGS_NAME = "training_args.json"
"""Where a training run records its arguments (in its output folder) for [`TrainingDetails.from_training_args`]."""

DEFAULT_TRAINING_DATA = (
    "Not documented for this pipeline (the training procedure, where recorded, names the data folder or dataset). "
    "Check the licences of the training datasets before using the model."
)
DEFAULT_TRAINING_PROCEDURE = "No training details were recorded with this pipeline."
DEFAULT_EVALUATION = "Not evaluated yet: run `python benchmarks/quality.py --pipeline PATH`."
DEFAULT_LIMITATIONS = """\
- Trained on a small public set of registered pairs: expect it to generalise poorly to other sensors, resolutions and
  scene types without fine-tuning.
- The low-resolution inputs of training were synthesised by bicubic downscaling (with random blur and noise); real
  low-resolution sensors degrade images differently.
- Only the luminance is fused; the colour (chroma) comes from the upsampled visible image alone.
- As a generative model it can invent plausible detail that neither source contains, most at large scale factors."""


@dataclass
class TrainingDetails:
    r"""
    How a pipeline was trained, as `training/train_fsdiff.py` records it; rendered into the card's training section.

    Args:
        data (`str`): The training folder (`--train_data_dir`) or `datasets` dataset (`--dataset_name`).
        target (`str`): What the U-Net learnt to generate (the dataset's fused images, or a classical fusion rule).
        base_model (`str`, *optional*): The pipeline fine-tuned from; `None` when trained from scratch.
        scale (`str`): Downscale factor, or range of factors, of the synthesised low-resolution inputs.
        resolution (`int`): Side of the square high-resolution training crops.
        steps (`int`, *optional*): Optimisation steps done; `None` when unknown.
        batch_size (`int`): Pairs per device and micro-batch.
        gradient_accumulation_steps (`int`): Micro-batches per optimisation step.
        num_processes (`int`): Data-parallel processes (devices).
        learning_rate (`float`): Peak AdamW learning rate.
        lr_scheduler (`str`): Learning-rate schedule, after `lr_warmup_steps` of warm-up.
        lr_warmup_steps (`int`): Warm-up steps.
        ema_max_decay (`float`, *optional*): Maximum EMA decay of the exported weights; `None` without EMA.
        prediction_type (`str`): What the U-Net predicts (`"epsilon"`, `"sample"` or `"v_prediction"`).
        loss (`str`): Denoising loss (`"l1"` or `"mse"`) on that prediction.
        clarity_loss_weight (`float`): Weight of the clarity head's loss.
        fusion_loss_weight (`float`): Weight of the intensity + gradient fusion loss.
        mixed_precision (`str`): `"no"`, `"fp16"` or `"bf16"`.
        hardware (`str`, *optional*): The devices trained on, when known.
        training_time (`str`, *optional*): Wall-clock training time, when known.
    """

    data: str
    target: str
    base_model: str | None
    scale: str
    resolution: int
    steps: int | None
    batch_size: int
    gradient_accumulation_steps: int
    num_processes: int
    learning_rate: float
    lr_scheduler: str
    lr_warmup_steps: int
    ema_max_decay: float | None
    prediction_type: str
    loss: str
    clarity_loss_weight: float
    fusion_loss_weight: float
    mixed_precision: str
    hardware: str | None = None
    training_time: str | None = None

    @classmethod
    def from_training_args(
        cls,
        training_args: Mapping[str, Any],
        steps: int | None,
        prediction_type: str | None = None,
        training_time: str | None = None,
    ) -> "TrainingDetails":
        r"""
        The details of a run from its `training_args.json` (the arguments of `train_fsdiff.py`, plus the run's
        `num_processes`, `hardware` and `fused_targets` where recorded).

        Args:
            training_args (`Mapping[str, Any]`): The run's arguments by name.
            steps (`int`, *optional*): Steps done (of the final pipeline, or of the exported checkpoint).
            prediction_type (`str`, *optional*): The trained U-Net's prediction type; defaults to
                `--prediction_type`, which a fine-tuning run ignores in favour of the base model's.
            training_time (`str`, *optional*): Wall-clock time, when known.
        """
        teacher = f"`{training_args['teacher']}` fusion of the high-resolution sources"
        fused_targets = training_args.get("fused_targets")
        if fused_targets is None:
            target = f"the dataset's fused images where it has them, otherwise {teacher}"
        else:
            target = "the dataset's fused images" if fused_targets else teacher
        return cls(
            data=training_args["dataset_name"] or training_args["train_data_dir"],
            target=target,
            base_model=training_args["pretrained_model_name_or_path"],
            scale=training_args["scale"],
            resolution=training_args["resolution"],
            steps=steps,
            batch_size=training_args["train_batch_size"],
            gradient_accumulation_steps=training_args["gradient_accumulation_steps"],
            num_processes=training_args.get("num_processes", 1),
            learning_rate=training_args["learning_rate"],
            lr_scheduler=training_args["lr_scheduler"],
            lr_warmup_steps=training_args["lr_warmup_steps"],
            ema_max_decay=training_args["ema_max_decay"] if training_args["use_ema"] else None,
            prediction_type=prediction_type or training_args["prediction_type"],
            loss=training_args["loss"],
            clarity_loss_weight=training_args["clarity_loss_weight"],
            fusion_loss_weight=training_args["fusion_loss_weight"],
            mixed_precision=training_args["mixed_precision"] or "no",
            hardware=training_args.get("hardware"),
            training_time=training_time,
        )

    @property
    def effective_batch_size(self) -> int:
        """Pairs per optimisation step, over all processes and accumulated micro-batches."""
        return self.batch_size * self.gradient_accumulation_steps * self.num_processes

    def to_markdown(self) -> str:
        """The card's training-procedure section: one bullet per aspect of the run."""
        ema = "none" if self.ema_max_decay is None else f"yes (maximum decay {self.ema_max_decay})"
        compute = ", ".join(part for part in (self.hardware, self.training_time) if part) or "not recorded"
        return "\n".join(
            [
                "Trained with `training/train_fsdiff.py` of fsdiff-diffusers.",
                "",
                f"- Data: `{self.data}`; target: {self.target}.",
                f"- Base model: {f'`{self.base_model}`' if self.base_model else 'none (trained from scratch)'}.",
                f"- Inputs: bicubic downscale by {self.scale} (with random blur and noise per modality) of "
                f"{self.resolution}x{self.resolution} high-resolution crops.",
                f"- Steps: {'not recorded' if self.steps is None else self.steps}; effective batch size "
                f"{self.effective_batch_size} ({self.batch_size} per device x {self.gradient_accumulation_steps} "
                f"accumulation steps x {self.num_processes} processes).",
                f"- Optimiser: AdamW, learning rate {self.learning_rate:g}, `{self.lr_scheduler}` schedule after "
                f"{self.lr_warmup_steps} warm-up steps. EMA: {ema}.",
                f"- Objective: {self.loss.upper()} loss on the U-Net's `{self.prediction_type}` prediction; clarity "
                f"loss weight {self.clarity_loss_weight:g}, fusion loss weight {self.fusion_loss_weight:g}.",
                f"- Mixed precision: {self.mixed_precision}. Compute: {compute}.",
            ]
        )


def describe_diffusion_target(config: Mapping[str, Any]) -> str:
    """What a U-Net config says it diffuses, for the card: `fused_image`, or the residual and its base."""
    if config["diffusion_target"] != "residual":
        return f"`{config['diffusion_target']}`"
    return (
        f"`residual` (the fused image minus the `{config['residual_base']}` fusion of the upsampled sources, divided "
        f"by {config['residual_scale']:g})"
    )


def model_card(
    pipeline: "FSDiffPipeline",
    repo_id: str,
    training: TrainingDetails | None = None,
    evaluation: str | None = None,
    training_data: str | None = None,
    limitations: str | None = None,
) -> ModelCard:
    r"""
    The model card of `pipeline` as published under `repo_id` (a Hub id, or the name of a folder).

    Args:
        pipeline ([`FSDiffPipeline`]): The pipeline described: its component sizes, prediction type and scheduler.
        repo_id (`str`): Title of the card and the name the usage examples load.
        training ([`TrainingDetails`], *optional*): How it was trained; the section says so when absent.
        evaluation (`str`, *optional*): Markdown (for example a table of fusion metrics) for the evaluation section.
        training_data (`str`, *optional*): Markdown describing the training datasets and their licences.
        limitations (`str`, *optional*): Markdown replacing the default list of limitations.

    Returns:
        `huggingface_hub.ModelCard`: the card; `.save("README.md")` writes it.
    """
    unet = pipeline.unet
    text = string.Template(MODEL_CARD_TEMPLATE.read_text(encoding="utf-8")).substitute(
        repo_id=repo_id,
        unet_parameters=f"{unet.num_parameters() / 1e6:.2f}",
        encoder_parameters=f"{pipeline.clarity_encoder.num_parameters() / 1e6:.2f}",
        scheduler=type(pipeline.scheduler).__name__,
        num_inference_steps=pipeline.default_num_inference_steps,
        prediction_type=unet.config.prediction_type,
        diffusion_target=describe_diffusion_target(unet.config),
        training_data=(training_data or DEFAULT_TRAINING_DATA).strip(),
        training_procedure=DEFAULT_TRAINING_PROCEDURE if training is None else training.to_markdown(),
        evaluation=(evaluation or DEFAULT_EVALUATION).strip(),
        limitations=(limitations or DEFAULT_LIMITATIONS).strip(),
    )
    return ModelCard(text)
