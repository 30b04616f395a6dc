"""The pipelines shipped in `fsdiff_diffusers/weights/`: layout, size, packaging, offline loading and real fusion."""

import configparser
import fnmatch
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from safetensors import safe_open

from fsdiff_diffusers import (
    DEFAULT_MODEL,
    IR_VIS_MODEL,
    MEDICAL_MODEL,
    SHIPPED_MODELS,
    FSDiffPipeline,
    metrics,
    protocol,
)
from fsdiff_diffusers.models import clarity_mamba, unet_fsdiff
from fsdiff_diffusers.pipelines import pipeline_fsdiff
from fsdiff_diffusers.remote_code import bundle_source

from .conftest import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
WEIGHT_FILES = ("unet/diffusion_pytorch_model.safetensors", "clarity_encoder/diffusion_pytorch_model.safetensors")
LAYOUT = ("model_index.json", "README.md", "unet/config.json", "clarity_encoder/config.json",
          "scheduler/scheduler_config.json", *WEIGHT_FILES)  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_names_point_at_the_shipped_folders():
    assert DEFAULT_MODEL == IR_VIS_MODEL
    assert SHIPPED_MODELS == {"fsdiff-ir-vis": IR_VIS_MODEL, "fsdiff-medical": MEDICAL_MODEL}


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_diffusers_layout_fp16_and_small(name):
    folder = Path(SHIPPED_MODELS[name])
    for relative in LAYOUT:
        assert (folder / relative).is_file(), f"{name} lacks {relative}"
    for relative in WEIGHT_FILES:
        with safe_open(folder / relative, framework="pt") as weights:
            assert {weights.get_slice(key).get_dtype() for key in weights.keys()} == {"F16"}, relative
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert total < 30 * 2**20, f"{name} is {total / 2**20:.1f} MiB: keep shipped models small"
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "diffusers"
    assert "## Training procedure" in card.text and "Steps:" in card.text


def test_every_shipped_file_is_package_data():
    """A wheel holds what setup.cfg's package_data globs match: every file of every shipped model must match one."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    globs = setup["options.package_data"]["fsdiff_diffusers"].split()
    package = REPO / "fsdiff_diffusers"
    for path in (package / "weights").rglob("*"):
        relative = path.relative_to(package).as_posix()
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in relative:
            matched = [g for g in globs if fnmatch.fnmatch(relative, g) and relative.count("/") == g.count("/")]
            assert matched, f"{relative} matches no package_data glob of setup.cfg: a wheel would leave it out"


def test_top_level_card_is_the_default_models_card():
    assert (REPO / "model_card.md").read_text() == (Path(DEFAULT_MODEL) / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_loads_offline_in_float32(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = FSDiffPipeline.from_pretrained(SHIPPED_MODELS[name])
    assert pipe.unet.dtype == torch.float32 and pipe.clarity_encoder.dtype == torch.float32
    assert pipe.unet.config.prediction_type == pipe.scheduler.config.prediction_type == "sample"


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"needs the real pairs in {DATA_DIR}")
def test_medical_model_fuses_a_real_mri_pet_pair():
    """x2 from a 64x64 downscale of a held-out pair: right size, PET colour kept, MRI and PET structure both present."""
    name = json.loads((DATA_DIR / "splits.json").read_text())["medical"]["test"]["Harvard_MRI_PET"][0]
    mri, pet = (Image.open(DATA_DIR / "Harvard_MRI_PET" / modality / name) for modality in ("mri", "pet"))
    mri_lr = mri.convert("L").resize((64, 64), Image.BICUBIC)
    pet_lr = pet.convert("RGB").resize((64, 64), Image.BICUBIC)
    pipe = FSDiffPipeline.from_pretrained(MEDICAL_MODEL)
    pipe.set_progress_bar_config(disable=True)
    fused = pipe(mri_lr, pet_lr, scale=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert fused.size == (128, 128) and fused.mode == "RGB"
    fused_grey = np.asarray(fused.convert("L"), dtype=np.float64)
    for source in (mri_lr, pet_lr):
        reference = np.asarray(source.convert("L").resize((128, 128), Image.BICUBIC), dtype=np.float64)
        assert np.corrcoef(fused_grey.ravel(), reference.ravel())[0, 1] > 0.3
    chroma = np.asarray(fused.convert("YCbCr"), dtype=np.float64)[..., 1:]
    assert np.abs(chroma - 128).mean() > 2, "the PET colour should survive fusion"


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_shipped_models_diffuse_the_residual_over_a_laplacian_max_fusion_in_their_validated_steps(name):
    config = json.loads((Path(SHIPPED_MODELS[name]) / "unet" / "config.json").read_text())
    assert (config["diffusion_target"], config["residual_base"]) == ("residual", "laplacian_max")
    index = json.loads((Path(SHIPPED_MODELS[name]) / "model_index.json").read_text())
    assert index["default_num_inference_steps"] == 1  # chosen on the validation split (training/RUNS.md, stage 3)


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"needs the real pairs in {DATA_DIR}")
def test_medical_model_beats_bicubic_plus_max_and_its_base_on_a_held_out_mri_ct_pair():
    """x4 under the benchmark protocol (PIL bicubic LR, metrics against the HR sources), at the model's default steps:
    the shipped medical model transfers more of the sources' edges (Qabf) and structure (SSIM) than bicubic
    upsampling + max and than its own base, bicubic + laplacian_max."""
    name = json.loads((DATA_DIR / "splits.json").read_text())["medical"]["test"]["Harvard_MRI_CT"][0]
    mri, ct = (protocol.load_grey(DATA_DIR / "Harvard_MRI_CT" / modality / name) for modality in ("mri", "ct"))
    pair = protocol.make_pair(mri, ct, 4)
    pipe = FSDiffPipeline.from_pretrained(MEDICAL_MODEL)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    output = pipe(pair.infrared_lr, pair.visible_lr, scale=4, generator=generator, output_type="np")
    fused = protocol.to_uint8(output.images[0, ..., 0])
    ours = metrics.evaluate(fused, pair.infrared, pair.visible, ["Qabf", "SSIM"])
    for rule in ("max", "laplacian_max"):
        baseline = protocol.bicubic_fusion_baseline(pair.infrared_lr, pair.visible_lr, 4, rule)
        theirs = metrics.evaluate(baseline, pair.infrared, pair.visible, ["Qabf", "SSIM"])
        assert ours["Qabf"] > theirs["Qabf"] + 0.05 and ours["SSIM"] > theirs["SSIM"], (rule, ours, theirs)


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_shipped_remote_code_is_generated_from_the_current_source(name):
    """The modules beside the weights are `save_pretrained`'s generated copies of the package's source, never edited
    by hand: after a change to a bundled module, re-save the shipped folders (or regenerate these files)."""
    folder = Path(SHIPPED_MODELS[name])
    index = json.loads((folder / "model_index.json").read_text())
    for key, module in (("_class_name", pipeline_fsdiff), ("unet", unet_fsdiff), ("clarity_encoder", clarity_mamba)):
        path = folder / (f"{index[key][0]}.py" if key == "_class_name" else f"{key}/{index[key][0]}.py")
        assert path.read_text() == bundle_source(module.__name__), f"{path} is stale"
