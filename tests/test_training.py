"""The training data pipeline and the Accelerate training script (short real runs with tiny models)."""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from fsdiff_diffusers import FSDiffPipeline
from fsdiff_diffusers.fusion import FUSION_METHODS

from .conftest import tiny_pipeline, tiny_unet

datasets = pytest.importorskip("datasets", reason="training needs the [train] extras (datasets, accelerate)")
pytest.importorskip("accelerate", reason="training needs the [train] extras (datasets, accelerate)")

from accelerate.state import AcceleratorState, PartialState  # noqa: E402

from fsdiff_diffusers.datasets_io import records_from_hf_dataset  # noqa: E402
from training import clarity_check, train_fsdiff  # noqa: E402
from training.dataset import FusionPairDataset, parse_scale, records_from_folder, records_from_splits  # noqa: E402
from training.train_fsdiff import build_dataset, build_validation_dataset, main, parse_args  # noqa: E402

# diffusers' own EMAModel.from_pretrained still passes a path to `from_config`
pytestmark = [
    pytest.mark.filterwarnings("ignore:It is deprecated to pass a pretrained model:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

TINY_MODEL = [
    "--unet_channels", "16,32", "--encoder_channels", "8,16", "--context_dim", "32", "--attention_head_dim", "16",
    "--unet_norm_groups", "8", "--encoder_norm_groups", "2", "--num_mamba_layers", "1",
]  # fmt: skip


FINAL_WEIGHTS = ("unet", "clarity_encoder", "checkpoint-4/unet_ema", "checkpoint-4/clarity_encoder_ema")
"""The weights two runs of 4 steps with `--use_ema` must agree on: the saved pipeline's and the last EMA copies."""

TRAIN_SCRIPT = Path(train_fsdiff.__file__)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each run in its own Accelerate state, as in a new process (the state is a process-wide singleton)."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def write_pairs(root: Path, count: int = 4, size: tuple[int, int] = (40, 48), fused: bool = False) -> Path:
    """A folder of `count` random grey infrared / colour visible pairs (+ fused targets) named 00, 01, ..."""
    rng = np.random.default_rng(0)
    for folder in ("ir", "vi") + (("fused",) if fused else ()):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        PIL.Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(root / "ir" / f"{index:02d}.png")
        PIL.Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / "vi" / f"{index:02d}.jpg")
        if fused:
            PIL.Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(root / "fused" / f"{index:02d}.png")
    return root


def train_argv(data_args: list[str], output_dir: Path, *extra: str) -> list[str]:
    """The command line of a tiny run (32x32 crops, batches of 2, the tiny model)."""
    return [*data_args, "--output_dir", str(output_dir), "--resolution", "32", "--train_batch_size", "2",
            "--report_to", "none", "--seed", "0", *TINY_MODEL, *extra]  # fmt: skip


def train_args(data_args: list[str], output_dir: Path, *extra: str):
    return parse_args(train_argv(data_args, output_dir, *extra))


def assert_same_weights(expected_dir: Path, actual_dir: Path, parts: tuple[str, ...]) -> None:
    """The safetensors weights of each folder in `parts` are bitwise equal in both runs."""
    for part in parts:
        expected = load_file(next((expected_dir / part).glob("*.safetensors")))
        actual = load_file(next((actual_dir / part).glob("*.safetensors")))
        assert expected.keys() == actual.keys()
        for name in expected:
            torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=f"{part}/{name}")


# Data -----------------------------------------------------------------------------------------------------------


def test_item_shapes_ranges_and_determinism(tmp_path):
    dataset = FusionPairDataset(records_from_folder(write_pairs(tmp_path, fused=True)), 32, scale=(2, 8), seed=1)
    item = dataset[1]
    assert item["sources"].shape == item["conditions"].shape == (2, 32, 32)
    assert item["target"].shape == (1, 32, 32) and item["clarity"].shape == (2,)
    for key in ("sources", "conditions", "target", "clarity"):
        assert 0 <= item[key].min() and item[key].max() <= 1
    assert 2 <= item["scale"] <= 8
    torch.testing.assert_close(dataset[1], item, rtol=0, atol=0)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1]["conditions"], item["conditions"])


def test_cached_images_give_the_same_items_without_reading_the_files_again(tmp_path):
    records = records_from_folder(write_pairs(tmp_path, fused=True))
    plain = FusionPairDataset(records, 32, scale=(2, 8), seed=1)
    cached = FusionPairDataset(records, 32, scale=(2, 8), seed=1, cache_images=True)
    first = [cached[index] for index in range(len(cached))]
    expected_items = [plain[index] for index in range(len(plain))]
    shutil.rmtree(tmp_path / "ir")  # a second epoch must not need the files
    cached.set_epoch(1)
    assert cached[0]["sources"].shape == (2, 32, 32)
    for item, expected in zip(first, expected_items):
        for key in ("sources", "conditions", "target"):  # float16 storage: within half an 8-bit grey level
            torch.testing.assert_close(item[key], expected[key], rtol=0, atol=2e-3)


def test_validation_pairs_come_from_the_validation_split(data_dir, tmp_path):
    args = train_args(["--train_data_dir", str(data_dir)], tmp_path, "--num_validation_images", "4")
    train = FusionPairDataset(records_from_splits(data_dir)[:3], 32)
    validation = build_validation_dataset(args, train)
    held_out = {r.name for r in records_from_splits(data_dir, split="validation")}
    assert len(validation) == 4 and {r.name for r in validation.records} <= held_out
    assert validation[0]["sources"].shape == (2, 32, 32)
    folder = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    folder_args = train_args(folder, tmp_path, "--num_validation_images", "9")
    folder_train = build_dataset(folder_args)
    assert [r.name for r in build_validation_dataset(folder_args, folder_train).records] == [
        r.name for r in folder_train.records
    ]


def test_crop_is_aligned_across_modalities(tmp_path):
    root = write_pairs(tmp_path)
    for index in range(4):  # identical sources: any misaligned crop or flip would show
        shutil.copy(root / "ir" / f"{index:02d}.png", root / "vi" / f"{index:02d}.png")
        (root / "vi" / f"{index:02d}.jpg").unlink()
    dataset = FusionPairDataset(records_from_folder(root), 24, scale=(4, 4))
    for index in range(4):
        sources = dataset[index]["sources"]
        torch.testing.assert_close(sources[0], sources[1])


def test_small_images_are_upscaled_to_the_crop(tmp_path):
    dataset = FusionPairDataset(records_from_folder(write_pairs(tmp_path, size=(20, 30))), 32)
    assert dataset[0]["sources"].shape == (2, 32, 32)


@pytest.mark.parametrize("text, expected", [("4", (4.0, 4.0)), ("2-8", (2.0, 8.0)), ("2.5", (2.5, 2.5))])
def test_parse_scale(text, expected):
    assert parse_scale(text) == expected


@pytest.mark.parametrize("text", ["0.5", "8-2", "x", "2-4-8", "inf"])
def test_parse_scale_rejects(text):
    with pytest.raises(ValueError, match="scale"):
        parse_scale(text)


def test_unmatched_stem_is_named(tmp_path):
    root = write_pairs(tmp_path)
    (root / "vi" / "03.jpg").rename(root / "vi" / "07.jpg")
    with pytest.raises(ValueError, match=r"03\.png.*07\.jpg"):
        records_from_folder(root)
    with pytest.warns(UserWarning, match=r"03\.png"):
        assert [r.name for r in records_from_folder(root, skip_broken=True)] == ["00", "01", "02"]


def test_size_mismatch_is_named(tmp_path):
    root = write_pairs(tmp_path)
    PIL.Image.new("L", (20, 20)).save(root / "ir" / "02.png")
    with pytest.raises(ValueError, match=r"'02' differ in size \(infrared 20x20, visible 48x40\)"):
        FusionPairDataset(records_from_folder(root), 16)
    with pytest.warns(UserWarning, match="'02'"):
        assert len(FusionPairDataset(records_from_folder(root), 16, skip_broken=True)) == 3


def test_undecodable_file_is_named(tmp_path):
    root = write_pairs(tmp_path)
    (root / "vi" / "01.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"visible image of '01'"):
        FusionPairDataset(records_from_folder(root), 16)
    with pytest.warns(UserWarning, match="01"):
        assert len(FusionPairDataset(records_from_folder(root), 16, skip_broken=True)) == 3


def test_in_memory_datasets_dataset_matches_the_folder(tmp_path):
    root = write_pairs(tmp_path)
    images = {c: [PIL.Image.open(p) for p in sorted((root / c).iterdir())] for c in ("ir", "vi")}
    hf_dataset = datasets.Dataset.from_dict(images)
    from_hf = FusionPairDataset(records_from_hf_dataset(hf_dataset, "ir", "vi"), 32, seed=3)
    from_folder = FusionPairDataset(records_from_folder(root), 32, seed=3)
    assert len(from_hf) == 4 and not from_hf.has_targets
    torch.testing.assert_close(from_hf[2], from_folder[2])
    with pytest.raises(ValueError, match="'infrared'"):
        records_from_hf_dataset(hf_dataset, "infrared", "vi")


def test_train_split_only(data_dir):
    """The train records are exactly splits.json's train lists, and share no file with validation or test."""
    splits = json.loads((data_dir / "splits.json").read_text())
    for group in ("infrared_visible", "medical"):
        names = {split: {r.name for r in records_from_splits(data_dir, group, split)} for split in splits[group]}
        assert len(names["train"]) == sum(len(files) for files in splits[group]["train"].values())
        assert not names["train"] & (names["validation"] | names["test"])
    ir_vis_train = records_from_splits(data_dir)
    assert not any(r.name.startswith(("TNO/", "TNO_extra/")) for r in ir_vis_train)
    medical = records_from_splits(data_dir, "medical")
    assert medical[0].images["infrared"].endswith(f"/mri/{Path(medical[0].name).name}")


def test_structural_loss_is_one_minus_the_ssim_metric_and_trains(data_dir):
    """`structural_loss` is 1 - the mean of SSIM(x0, ir) and SSIM(x0, vi) as `metrics.ssim` (VIFB) scores it, up to
    the borders it keeps; 0 for a copy of identical sources; and it has gradients."""
    from fsdiff_diffusers.metrics import ssim

    ir = np.asarray(PIL.Image.open(data_dir / "TNO" / "ir" / "01.png").convert("L"))[:256, :256]
    vi = np.asarray(PIL.Image.open(data_dir / "TNO" / "vi" / "01.png").convert("L"))[:256, :256]
    fused = np.maximum(ir, vi)
    as_tensor = lambda *images: torch.tensor(np.stack(images), dtype=torch.float32)[None] / 255  # noqa: E731
    fused_t = as_tensor(fused).requires_grad_()
    loss = train_fsdiff.structural_loss(fused_t, as_tensor(ir, vi), torch.ones(1))
    assert loss.item() == pytest.approx(1 - ssim(fused, ir, vi) / 2, abs=0.01)
    loss.backward()
    assert fused_t.grad.abs().sum() > 0 and torch.isfinite(fused_t.grad).all()
    same = as_tensor(ir)
    assert train_fsdiff.structural_loss(same, as_tensor(ir, ir), torch.ones(1)).item() == pytest.approx(0, abs=1e-6)


# Training script --------------------------------------------------------------------------------------------------


def test_short_run_on_real_data_gives_a_loadable_pipeline(data_dir, tmp_path):
    main(train_args(["--train_data_dir", str(data_dir)], tmp_path, "--max_train_steps", "3", "--scale", "2-8",
                    "--use_ema", "--fusion_loss_weight", "0.5", "--ssim_loss_weight", "0.2",
                    "--validation_steps", "3"))  # fmt: skip
    pipe = FSDiffPipeline.from_pretrained(tmp_path)
    pipe.set_progress_bar_config(disable=True)
    ir, vi = torch.rand(1, 8, 8), torch.rand(3, 8, 8)
    image = pipe(ir, vi, scale=4, num_inference_steps=2, output_type="np").images[0]
    assert image.shape == (32, 32, 3) and np.isfinite(image).all()


@pytest.mark.parametrize(
    "pairs, accumulation",
    [(6, 1), (10, 2)],  # resume at an epoch boundary / mid-epoch (4 batches skipped) with gradient accumulation
)
def test_resume_replays_the_run_exactly(tmp_path, pairs, accumulation):
    """4 steps straight == 2 steps, a checkpoint, a fresh process state resuming from it, 2 more steps."""
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data", count=pairs))]
    extra = ("--max_train_steps", "4", "--checkpointing_steps", "2", "--use_ema", "--scale", "2-4",
             "--lr_warmup_steps", "1", "--learning_rate", "1e-3",
             "--gradient_accumulation_steps", str(accumulation))  # fmt: skip
    main(train_args(data, tmp_path / "straight", *extra))
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    main(train_args(data, tmp_path / "resumed", *extra, "--resume_from_checkpoint", "latest"))
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed", FINAL_WEIGHTS)


def run_two_processes(argv: list[str]) -> None:
    """`train_fsdiff.py argv` in two CPU processes (torchrun, gloo backend) on a free port."""
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch was built without torch.distributed (gloo): torchrun cannot start two processes")
    env = {name: value for name, value in os.environ.items() if name not in train_fsdiff.WORLD_SIZE_VARIABLES}
    env.update(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(TRAIN_SCRIPT), *argv]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-6000:]}"


def test_two_processes_prune_checkpoints_safely_and_resume_exactly(tmp_path):
    """
    Under torchrun --nproc_per_node 2: a checkpoint every step with a limit of 2 (pruning while the other process
    trains), each checkpoint with both processes' random states, and 4 steps straight == resuming from step 3, bitwise
    (mid-epoch: 12 pairs in batches of 2 on 2 processes are 3 micro-batches per process, 2 optimizer steps an epoch).
    """
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data", count=12))]
    extra = ("--max_train_steps", "4", "--checkpointing_steps", "1", "--checkpoints_total_limit", "2", "--use_ema",
             "--scale", "2-4", "--lr_warmup_steps", "1", "--learning_rate", "1e-3",
             "--gradient_accumulation_steps", "2")  # fmt: skip
    straight = tmp_path / "straight"
    run_two_processes(train_argv(data, straight, *extra))
    assert json.loads((straight / "training_args.json").read_text())["num_processes"] == 2
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    for checkpoint in ("checkpoint-3", "checkpoint-4"):
        files = sorted(p.name for p in (straight / checkpoint).glob("random_states_*.pkl"))
        assert files == ["random_states_0.pkl", "random_states_1.pkl"]
        steps = {torch.load(straight / checkpoint / name, weights_only=False)["step"] for name in files}
        assert len(steps) == 1, f"{checkpoint}: the processes' gradient accumulation counters differ: {steps}"

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(straight / "checkpoint-3", resumed / "checkpoint-3")
    run_two_processes(train_argv(data, resumed, *extra, "--resume_from_checkpoint", "latest"))
    assert_same_weights(straight, resumed, FINAL_WEIGHTS)


def test_latest_skips_unfinished_checkpoints(tmp_path, caplog):
    """A save in progress (`checkpoint-<step>.tmp`) and a checkpoint without all its files are never resumed from."""
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    out = tmp_path / "out"
    main(train_args(data, out, "--max_train_steps", "1", "--checkpointing_steps", "1"))
    shutil.copytree(out / "checkpoint-1", out / "checkpoint-5.tmp")
    shutil.copytree(out / "checkpoint-1", out / "checkpoint-3")
    (out / "checkpoint-3" / "optimizer.bin").unlink()
    AcceleratorState._reset_state(reset_partial_state=True)
    trainer = train_fsdiff.Trainer(train_args(data, out))
    with caplog.at_level(logging.WARNING):
        assert trainer.checkpoint_to_resume("latest") == out / "checkpoint-1"
    assert f"Skipping {out / 'checkpoint-3'}: it is incomplete (no optimizer.bin)" in caplog.text
    with pytest.raises(FileNotFoundError, match="checkpoint-3' is incomplete: it has no optimizer.bin"):
        trainer.checkpoint_to_resume("checkpoint-3")


def test_several_processes_asked_for_but_one_started(tmp_path, monkeypatch, caplog):
    """
    `accelerate launch --cpu --num_processes 2` starts one process (setting MASTER_ADDR / MASTER_PORT, no world
    size): a warning. torchrun without ACCELERATE_USE_CPU=1 on a machine without GPUs starts two processes that each
    train alone (WORLD_SIZE=2, Accelerate sees one): an error, before either writes anything.
    """
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    for name in train_fsdiff.WORLD_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with caplog.at_level(logging.WARNING):
        train_fsdiff.Trainer(train_args(data, tmp_path / "out"))
    assert "`accelerate launch` was asked for several processes but started this one only" in caplog.text
    assert "ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N" in caplog.text

    AcceleratorState._reset_state(reset_partial_state=True)
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="started 2 processes, but each trains alone"):
        train_fsdiff.Trainer(train_args(data, tmp_path / "alone"))
    assert not (tmp_path / "alone").exists()


def test_imagefolder_dataset_with_targets_and_checkpoint_limit(tmp_path):
    root = write_pairs(tmp_path / "data", count=4, fused=True)
    rows = [
        {f"{role}_file_name": f"{folder}/{name}" for role, folder, name in
         (("infrared", "ir", f"{i:02d}.png"), ("visible", "vi", f"{i:02d}.jpg"), ("target", "fused", f"{i:02d}.png"))}
        for i in range(4)
    ]  # fmt: skip
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    args = train_args(["--dataset_name", str(root), "--target_column", "target"], tmp_path / "out",
                      "--max_train_steps", "3", "--checkpointing_steps", "1", "--checkpoints_total_limit", "1",
                      "--gradient_accumulation_steps", "2", "--loss", "mse", "--gradient_checkpointing")  # fmt: skip
    main(args)
    assert sorted(p.name for p in (tmp_path / "out").glob("checkpoint-*")) == ["checkpoint-3"]
    assert FSDiffPipeline.from_pretrained(tmp_path / "out").unet.config.block_out_channels == [16, 32]
    assert "the dataset's fused images" in (tmp_path / "out" / "README.md").read_text()


def test_validation_images_and_metrics_are_logged_to_tensorboard_mid_run_in_mixed_precision(tmp_path):
    pytest.importorskip("tensorboard", reason="--report_to tensorboard needs tensorboard (in the [train] extras)")
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    args = train_args(data, tmp_path / "out", "--max_train_steps", "3", "--validation_steps", "2", "--use_ema",
                      "--mixed_precision", "bf16")  # fmt: skip
    args.report_to = "tensorboard"
    main(args)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "out" / "logs").rglob("events.out.tfevents.*")).parent)).Reload()
    assert "validation" in events.Tags()["images"]
    assert "loss/clarity" in events.Tags()["scalars"]
    qabf = events.Scalars("validation/Qabf")
    assert [event.step for event in qabf] == [2] and 0 <= qabf[0].value <= 1


def test_fine_tunes_a_saved_pipeline(tmp_path):
    tiny_pipeline(seed=5).save_pretrained(tmp_path / "base")
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    main(train_args(data, tmp_path / "out", "--max_train_steps", "1", "--pretrained_model_name_or_path",
                    str(tmp_path / "base"), "--learning_rate", "1e-3", "--lr_warmup_steps", "0"))  # fmt: skip
    base = load_file(tmp_path / "base" / "unet" / "diffusion_pytorch_model.safetensors")
    tuned = load_file(tmp_path / "out" / "unet" / "diffusion_pytorch_model.safetensors")
    assert base.keys() == tuned.keys() and any(not torch.equal(base[k], tuned[k]) for k in base)
    assert f"Base model: `{tmp_path / 'base'}`." in (tmp_path / "out" / "README.md").read_text()


def test_fine_tuning_can_switch_to_the_residual_target(tmp_path):
    """--diffusion_target residual on a fused-image pipeline records the new target and zeroes the output layer, so
    the switched model starts at its base; the saved pipeline keeps the new target."""
    tiny_pipeline(seed=5, unet=tiny_unet(prediction_type="sample")).save_pretrained(tmp_path / "base")
    PartialState()  # the script's logger needs an Accelerate state
    base = ["--train_data_dir", str(tmp_path), "--pretrained_model_name_or_path", str(tmp_path / "base")]
    args = parse_args([*base, "--diffusion_target", "residual", "--residual_base", "gff", "--residual_scale", "0.25"])
    unet, _ = train_fsdiff.build_models(args)
    config = unet.config
    assert (config.diffusion_target, config.residual_base, config.residual_scale) == ("residual", "gff", 0.25)
    assert not unet.conv_out.weight.any() and not unet.conv_out.bias.any()
    plain = parse_args(base)
    unchanged, _ = train_fsdiff.build_models(plain)
    assert unchanged.config.diffusion_target == "fused_image" and unchanged.conv_out.weight.any()

    data = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    main(train_args(data, tmp_path / "out", "--max_train_steps", "2", "--diffusion_target", "residual",
                    "--residual_base", "max", "--prediction_type", "sample", "--teacher", "max"))  # fmt: skip
    saved = FSDiffPipeline.from_pretrained(tmp_path / "out")
    assert saved.unet.config.diffusion_target == "residual" and saved.unet.config.residual_base == "max"


def test_model_size_flags_default_to_the_model_classes(tmp_path, capsys):
    """Unset, the size flags build the classes' default models, and --help shows those defaults."""
    args = parse_args(["--train_data_dir", str(tmp_path)])
    assert args.unet_channels is None and args.context_dim is None
    defaults = {}
    for model in train_fsdiff.build_models(args):
        defaults[type(model)] = type(model)().config
        assert {k: v for k, v in model.config.items() if not k.startswith("_")} == {
            k: v for k, v in defaults[type(model)].items() if not k.startswith("_")
        }
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for flag, (model_cls, argument, _) in train_fsdiff.MODEL_SIZE_FLAGS.items():
        default = defaults[model_cls][argument]
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        assert f"--{flag} {flag.upper()} " in help_text and f"Default: {shown} (`{argument}` of" in help_text


def test_resolution_must_fit_the_unet(tmp_path):
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    with pytest.raises(ValueError, match="multiple of the U-Net's stride 4"):
        main(train_args(data, tmp_path / "out", "--resolution", "30"))


def test_push_to_hub_uploads_the_pipeline_and_card_without_checkpoints(tmp_path, monkeypatch):
    calls = {}
    monkeypatch.setattr(
        train_fsdiff, "create_repo", lambda repo_id, **kwargs: SimpleNamespace(repo_id=f"me/{repo_id}")
    )
    monkeypatch.setattr(train_fsdiff, "upload_folder", lambda **kwargs: calls.update(kwargs))
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    main(train_args(data, tmp_path / "out", "--max_train_steps", "1", "--push_to_hub", "--hub_model_id", "tiny"))
    assert calls["repo_id"] == "me/tiny" and calls["folder_path"] == str(tmp_path / "out")
    assert "checkpoint-*" in calls["ignore_patterns"]
    assert "# me/tiny" in (tmp_path / "out" / "README.md").read_text()


def test_data_source_flags_are_checked(tmp_path):
    with pytest.raises(SystemExit):
        parse_args(["--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        parse_args(["--train_data_dir", str(tmp_path), "--scale", "0.5"])
    with pytest.raises(SystemExit):
        parse_args(["--train_data_dir", str(tmp_path), "--report_to", "wandb", "--hub_token", "secret"])


def test_spearman_ranks():
    values = np.array([0.1, 0.5, 0.2, 0.9])
    assert clarity_check.spearman(values, values**3) == pytest.approx(1.0)
    assert clarity_check.spearman(values, -values) == pytest.approx(-1.0)
    assert clarity_check.spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)


def test_clarity_check_of_a_saved_pipeline(tmp_path, capsys):
    tiny_pipeline(seed=5).save_pretrained(tmp_path / "pipe")
    data = write_pairs(tmp_path / "data", count=3, size=(40, 48))
    agreement = clarity_check.main(["--model", str(tmp_path / "pipe"), "--infrared_dir", str(data / "ir"),
                                    "--visible_dir", str(data / "vi"), "--crop", "32", "--trials", "2"])  # fmt: skip
    assert agreement.count == 3 * 2 * 2 and -1 <= agreement.spearman <= 1
    assert 0 < agreement.constant_guess_error < 1 and 0 <= agreement.mean_absolute_error < 1
    assert f"{agreement.count} degraded sources: Spearman" in capsys.readouterr().out
    with pytest.raises(ValueError, match="smaller than --crop 64"):
        clarity_check.main(["--model", str(tmp_path / "pipe"), "--infrared_dir", str(data / "ir"),
                            "--visible_dir", str(data / "vi"), "--crop", "64"])  # fmt: skip


def test_speed_flags_channels_last_bf16_and_compile(tmp_path):
    data = ["--train_data_dir", str(write_pairs(tmp_path / "data"))]
    args = train_args(data, tmp_path / "out", "--max_train_steps", "2", "--channels_last", "--mixed_precision", "bf16",
                      "--cache_images")  # fmt: skip
    main(args)
    assert FSDiffPipeline.from_pretrained(tmp_path / "out").unet.conv_out.weight.is_contiguous()  # saved as usual
    AcceleratorState._reset_state(True)  # the state is a singleton: the next Accelerator sets it anew
    compiled = train_fsdiff.Trainer(train_args(data, tmp_path / "c", "--torch_compile"))
    assert compiled.accelerator.state.dynamo_plugin.backend.value.lower() == "inductor"  # compiled in prepare()


def test_teacher_check_scores_every_rule_as_baseline_and_teacher(data_dir, capsys):
    from training import teacher_check

    scores = teacher_check.main(["--data_dir", str(data_dir), "--limit", "1", "--crop", "64"])
    assert {rule for _, rule in scores} == set(FUSION_METHODS) and len(scores) == 2 * len(FUSION_METHODS)
    teacher, baseline = scores["rule on HR (teacher)", "max"], scores["bicubic + rule", "max"]
    assert teacher["Qabf"] > baseline["Qabf"] and teacher["SF"] > baseline["SF"]  # HR detail the LR pair lacks
    assert "| rule on HR (teacher) | laplacian_max |" in capsys.readouterr().out
