"""Model cards: the template rendered with and without training details, and the cards of training and export."""

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from fsdiff_diffusers import FSDiffPipeline
from fsdiff_diffusers.model_card import (
    DEFAULT_EVALUATION,
    DEFAULT_LIMITATIONS,
    DEFAULT_TRAINING_DATA,
    DEFAULT_TRAINING_PROCEDURE,
    TRAINING_ARGS_NAME,
    TrainingDetails,
    model_card,
)

from .conftest import tiny_pipeline, tiny_unet

DETAILS = TrainingDetails(
    data="data/ir_vis",
    target="`gff` fusion of the high-resolution sources",
    base_model=None,
    scale="2-8",
    resolution=128,
    steps=4000,
    batch_size=16,
    gradient_accumulation_steps=2,
    num_processes=2,
    learning_rate=1e-4,
    lr_scheduler="cosine",
    lr_warmup_steps=500,
    ema_max_decay=0.9999,
    prediction_type="v_prediction",
    loss="mse",
    clarity_loss_weight=0.1,
    fusion_loss_weight=0.5,
    mixed_precision="bf16",
    hardware="2 x NVIDIA H100",
    training_time="3.5 h",
)
EVALUATION = "| method | Qabf | SCD |\n|---|---|---|\n| FS-Diff | 0.301 | 1.612 |"


def saved_and_loaded(card: ModelCard, path: Path) -> ModelCard:
    card.save(path)
    return ModelCard.load(path)


def test_card_without_training_details(tmp_path):
    pipe = tiny_pipeline()
    card = saved_and_loaded(pipe.model_card("org/fsdiff-tiny"), tmp_path / "README.md")

    assert card.data.license == "apache-2.0" and card.data.library_name == "diffusers"
    assert card.data.pipeline_tag == "image-to-image"
    assert {"diffusers:FSDiffPipeline", "image-fusion", "super-resolution", "infrared", "medical-imaging"} <= set(
        card.data.tags
    )
    text = card.text
    assert text.startswith("\n# org/fsdiff-tiny\n") and "${" not in text
    assert f"| {pipe.unet.num_parameters() / 1e6:.2f} M parameters |" in text
    assert "| `scheduler` | `DPMSolverMultistepScheduler` | 10 steps by default |" in text
    assert "Prediction type: `epsilon`; diffused target: `fused_image`." in text
    assert 'FSDiffPipeline.from_pretrained("org/fsdiff-tiny")' in text
    # Both ways to load: the installed package, or Diffusers alone with the saved remote code (test_remote_code.py).
    assert 'DiffusionPipeline.from_pretrained("org/fsdiff-tiny", trust_remote_code=True)' in text
    assert "--model org/fsdiff-tiny" in text and "--pretrained_model_name_or_path org/fsdiff-tiny" in text
    assert "UniPCMultistepScheduler.from_config(pipe.scheduler.config)" in text
    for default in (DEFAULT_TRAINING_DATA, DEFAULT_TRAINING_PROCEDURE, DEFAULT_EVALUATION, DEFAULT_LIMITATIONS):
        assert default in text
    assert "Information Fusion" in text and "@article{jie2025fsdiff," in text


def test_card_of_a_residual_model_names_its_base():
    pipe = tiny_pipeline(unet=tiny_unet(diffusion_target="residual", residual_base="max", residual_scale=0.5))
    assert (
        "diffused target: `residual` (the fused image minus the `max` fusion of the upsampled sources, divided by 0.5)."
        in pipe.model_card("org/fsdiff-tiny").text
    )


def test_card_with_training_details_evaluation_data_and_limitations():
    card = model_card(
        tiny_pipeline(),
        "org/fsdiff",
        training=DETAILS,
        evaluation=EVALUATION + "\n",
        training_data="MSRS (MIT licence).",
        limitations="- Grey images only.",
    )
    text = card.text
    assert DEFAULT_TRAINING_PROCEDURE not in text and DEFAULT_EVALUATION not in text
    assert DEFAULT_TRAINING_DATA not in text and DEFAULT_LIMITATIONS not in text
    assert f"## Evaluation\n\n{EVALUATION}\n\n## Limitations\n\n- Grey images only.\n" in text
    assert "## Training data\n\nMSRS (MIT licence).\n" in text
    assert DETAILS.to_markdown() in text
    for fact in (
        "Data: `data/ir_vis`; target: `gff` fusion of the high-resolution sources.",
        "Base model: none (trained from scratch).",
        "bicubic downscale by 2-8",
        "128x128 high-resolution crops",
        "Steps: 4000; effective batch size 64 (16 per device x 2 accumulation steps x 2 processes)",
        "learning rate 0.0001, `cosine` schedule after 500 warm-up steps. EMA: yes (maximum decay 0.9999)",
        "MSE loss on the U-Net's `v_prediction` prediction; clarity loss weight 0.1, fusion loss weight 0.5.",
        "Mixed precision: bf16. Compute: 2 x NVIDIA H100, 3.5 h.",
    ):
        assert fact in text, fact
    assert "epsilon" not in DETAILS.to_markdown()


def test_training_details_unknowns():
    markdown = replace(DETAILS, steps=None, ema_max_decay=None, hardware=None, training_time=None).to_markdown()
    assert "Steps: not recorded;" in markdown and "EMA: none." in markdown and "Compute: not recorded." in markdown
    assert "Base model: `org/base`." in replace(DETAILS, base_model="org/base").to_markdown()


# Cards of a training run and of its exported checkpoints ---------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 2-step tiny training run (v-prediction, MSE, EMA) with checkpoints at steps 1 and 2."""
    pytest.importorskip("datasets", reason="training needs the [train] extras (datasets, accelerate)")
    pytest.importorskip("accelerate", reason="training needs the [train] extras (datasets, accelerate)")
    from accelerate.state import AcceleratorState

    from training.train_fsdiff import main

    from .test_training import train_args, write_pairs

    root = tmp_path_factory.mktemp("run")
    data = ["--train_data_dir", str(write_pairs(root / "data"))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main(train_args(data, root / "out", "--max_train_steps", "2", "--checkpointing_steps", "1", "--use_ema",
                        "--prediction_type", "v_prediction", "--loss", "mse", "--teacher", "laplacian",
                        "--hub_token", "hf_secret"))  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        AcceleratorState._reset_state(reset_partial_state=True)
    return root


def export(*args: str) -> None:
    from training.export_checkpoint import main, parse_args

    main(parse_args(list(args)))


def test_training_writes_its_arguments_and_a_card_of_the_final_pipeline(run):
    training_args = json.loads((run / "out" / TRAINING_ARGS_NAME).read_text())
    assert "hub_token" not in training_args
    assert training_args["unet_channels"] == [16, 32] and training_args["prediction_type"] == "v_prediction"
    assert training_args["num_processes"] == 1 and training_args["fused_targets"] is False
    assert training_args["hardware"].startswith("1 x ")

    card = ModelCard.load(run / "out" / "README.md")
    assert "diffusers:FSDiffPipeline" in card.data.tags
    text = card.text
    assert text.startswith("\n# out\n")
    assert "Prediction type: `v_prediction`" in text and "epsilon" not in text
    assert "MSE loss on the U-Net's `v_prediction` prediction" in text
    assert "target: `laplacian` fusion of the high-resolution sources." in text
    assert "Steps: 2; effective batch size 2 (2 per device x 1 accumulation steps x 1 processes)" in text
    assert f"Data: `{run / 'data'}`" in text and "EMA: yes (maximum decay 0.9999)" in text
    assert re.search(rf"Compute: {re.escape(training_args['hardware'])}, \d+ min\.", text)


def test_export_writes_the_card_of_the_checkpoint_and_its_copy(run, tmp_path):
    (tmp_path / "scores.md").write_text(EVALUATION)
    (tmp_path / "data.md").write_text("The train split of MSRS (MIT licence).")
    export("--checkpoint", str(run / "out" / "checkpoint-1"), "--output_dir", str(tmp_path / "pipe"),
           "--repo_id", "org/fsdiff-ir-vis", "--evaluation", str(tmp_path / "scores.md"),
           "--training_data", str(tmp_path / "data.md"), "--card_copy", str(tmp_path / "model_card.md"),
           "--default_steps", "2")  # fmt: skip

    readme = (tmp_path / "pipe" / "README.md").read_text()
    assert (tmp_path / "model_card.md").read_text() == readme
    text = ModelCard.load(tmp_path / "pipe" / "README.md").text
    assert text.startswith("\n# org/fsdiff-ir-vis\n") and 'from_pretrained("org/fsdiff-ir-vis")' in text
    assert "Steps: 1; effective batch size 2" in text and "MSE loss on the U-Net's `v_prediction` prediction" in text
    assert f"Data: `{run / 'data'}`" in text and "Compute: 1 x " in text
    assert EVALUATION in text and "The train split of MSRS (MIT licence)." in text
    exported = FSDiffPipeline.from_pretrained(tmp_path / "pipe")
    assert exported.unet.config.prediction_type == "v_prediction" and exported.default_num_inference_steps == 2
    assert "2 steps by default" in text


def test_export_without_training_args_or_without_card(run, tmp_path):
    from training.export_checkpoint import export_checkpoint, parse_args

    checkpoint = tmp_path / "elsewhere" / "checkpoint-2"
    shutil.copytree(run / "out" / "checkpoint-2", checkpoint)  # a checkpoint without its run's training_args.json
    export_checkpoint(str(checkpoint), str(tmp_path / "pipe"), use_ema=False)
    text = (tmp_path / "pipe" / "README.md").read_text()
    assert "# pipe\n" in text and DEFAULT_TRAINING_PROCEDURE in text

    export_checkpoint(str(checkpoint), str(tmp_path / "bare"), card=False)
    assert not (tmp_path / "bare" / "README.md").exists() and (tmp_path / "bare" / "model_index.json").is_file()
    with pytest.raises(SystemExit):
        parse_args(["--checkpoint", "c", "--output_dir", "o", "--no_card", "--card_copy", "card.md"])
