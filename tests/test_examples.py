"""The scripts of examples/, run end to end through their `main(argv)` with tiny pipelines and small images."""

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from fsdiff_diffusers import DEFAULT_MODEL, FSDiffPipeline
from fsdiff_diffusers.example_pair import example_pair

from .conftest import DATA_DIR, tiny_pipeline
from .test_hub import fake_hub, hub_offline  # noqa: F401 (fixtures: mocked create_repo/upload_folder, no network)

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
TNO_PAIR = DATA_DIR / "TNO" / "ir" / "01.png"

pytestmark = [
    pytest.mark.filterwarnings("ignore:It is deprecated to pass a pretrained model:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]


def example(name: str) -> ModuleType:
    """Import `examples/<name>.py` as the scripts see each other: with examples/ on `sys.path`."""
    if str(EXAMPLES_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLES_DIR))
    return importlib.import_module(name)


def run(name: str, *argv):
    """`examples/<name>.py ARGV...` in-process: its `main` with the arguments as strings."""
    return example(name).main([str(arg) for arg in argv])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("models") / "tiny"
    tiny_pipeline(seed=3).save_pretrained(folder)
    return str(folder)


def fuse(model: str, infrared, visible, scale: float, steps: int, seed: int = 0) -> np.ndarray:
    pipe = FSDiffPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    return np.asarray(pipe(infrared, visible, scale=scale, num_inference_steps=steps, generator=generator).images[0])


# fuse_pair.py ------------------------------------------------------------------------------------------------------


def test_fuse_pair_default_pair(tiny_model, tmp_path, capsys):
    output = tmp_path / "fused.png"
    returned = run("fuse_pair", "--model", tiny_model, "--size", 40, "--scale", 2, "--steps", 2, "-o", output)
    assert returned == str(output)
    printed = capsys.readouterr().out
    assert PIL.Image.open(output).size == (80, 60)  # TNO 01 (768x576) or the synthetic pair, both 40x30 in
    assert f"Saved {output} (80x60)" in printed
    assert ("real pair TNO/01.png" if TNO_PAIR.is_file() else "SYNTHETIC") in printed


def test_fuse_pair_without_the_shared_data_uses_the_labelled_synthetic_pair(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(example("_common"), "SHARED_DATA", tmp_path / "no-data")
    output = tmp_path / "fused.png"
    run("fuse_pair", "--model", tiny_model, "--size", 40, "--scale", 2, "--steps", 2, "--seed", 5, "-o", output)
    assert "SYNTHETIC pair (fsdiff_diffusers.example_pair" in capsys.readouterr().out
    expected = fuse(tiny_model, *example_pair(40, 30), scale=2, steps=2, seed=5)
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(output)), expected)


def test_fuse_pair_own_files_resized(tiny_model, tmp_path):
    infrared, visible = example_pair(64, 48, seed=1)
    infrared.save(tmp_path / "ir.png")
    visible.save(tmp_path / "vi.jpg")
    output = tmp_path / "fused.png"
    sources = ["--infrared", tmp_path / "ir.png", "--visible", tmp_path / "vi.jpg"]
    run("fuse_pair", "--model", tiny_model, *sources, "--size", 32, "--scale", 3, "--steps", 1, "-o", output)
    image = PIL.Image.open(output)
    assert image.size == (96, 72) and image.mode == "RGB"
    with pytest.raises(SystemExit):
        example("fuse_pair").parse_args(["--infrared", "ir.png"])


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(DEFAULT_MODEL, "model_index.json")),
    reason=f"the shipped weights are not installed: {DEFAULT_MODEL} has no model_index.json",
)
def test_fuse_pair_with_the_shipped_model(tmp_path, capsys):
    output = tmp_path / "fused.png"
    run("fuse_pair", "--size", 32, "--steps", 1, "-o", output)
    image = np.asarray(PIL.Image.open(output).convert("L"), dtype=np.float64)
    assert image.shape == (96, 128) and image.std() > 5  # a picture, not a flat or empty image
    assert "Saved" in capsys.readouterr().out


def test_a_folder_without_a_pipeline_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no model_index.json"):
        example("_common").load_pipeline(tmp_path)


# compare_schedulers.py ---------------------------------------------------------------------------------------------


def test_compare_schedulers_table(tiny_model, capsys):
    results = run("compare_schedulers", "--model", tiny_model, "--schedulers", "dpm++", "ddim", "--steps", 1, 3,
                  "--reference_steps", 3, "--size", 32, "--scale", 2)  # fmt: skip
    table = capsys.readouterr().out
    assert [(r.scheduler, r.steps) for r in results] == [
        ("DPMSolverMultistep (ref)", 3), ("dpm++", 1), ("dpm++", 3), ("ddim", 1), ("ddim", 3)
    ]  # fmt: skip
    assert all(r.seconds > 0 and np.isfinite(r.difference) for r in results)
    by_name = {(r.scheduler, r.steps): r.difference for r in results}
    # The shipped scheduler at the reference's steps, from the same noise, is the reference exactly.
    assert by_name[("DPMSolverMultistep (ref)", 3)] == by_name[("dpm++", 3)] == 0
    assert by_name[("dpm++", 1)] > 0 and by_name[("ddim", 1)] > 0 and by_name[("ddim", 3)] > 0
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(results)  # header + one row per result
    assert any(row.startswith("| ddim ") and "|     3 |" in row for row in rows)
    assert "fused at x2 to 64x48" in table
    with pytest.raises(ValueError, match="unknown scheduler 'nope'"):
        run("compare_schedulers", "--model", tiny_model, "--schedulers", "ddim", "nope", "--size", 32)


# finetune.py -------------------------------------------------------------------------------------------------------


def write_pairs(root: Path) -> Path:
    """Three pairs in ir/ and vi/: real RoadScene pairs when the shared data is there, else synthetic ones."""
    (root / "ir").mkdir(parents=True)
    (root / "vi").mkdir()
    real = sorted((DATA_DIR / "RoadScene" / "ir").glob("*.jpg"))[:3]
    for index in range(3):
        if real:
            shutil.copy(real[index], root / "ir" / real[index].name)
            shutil.copy(DATA_DIR / "RoadScene" / "vi" / real[index].name, root / "vi" / real[index].name)
        else:
            infrared, visible = example_pair(64, 48, seed=index)
            infrared.save(root / "ir" / f"{index:02d}.png")
            visible.save(root / "vi" / f"{index:02d}.png")
    return root


def test_finetune_trains_saves_and_fuses(tiny_model, tmp_path, capsys):
    pytest.importorskip("accelerate", reason="fine-tuning needs the [train] extras (accelerate, datasets)")
    from accelerate.state import AcceleratorState

    data, output_dir = write_pairs(tmp_path / "pairs"), tmp_path / "tuned"
    try:  # --scale is not finetune.py's: it goes on to the training script
        sample = run("finetune", "--train_data_dir", data, "--model", tiny_model, "--output_dir", output_dir,
                     "--max_train_steps", 2, "--resolution", 32, "--train_batch_size", 2, "--sample_size", 32,
                     "--sample_steps", 1, "--scale", "2-4")  # fmt: skip
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)

    base = load_file(Path(tiny_model) / "unet" / "diffusion_pytorch_model.safetensors")
    tuned = load_file(output_dir / "unet" / "diffusion_pytorch_model.safetensors")
    assert base.keys() == tuned.keys() and any(not torch.equal(base[k], tuned[k]) for k in base)
    card = (output_dir / "README.md").read_text()
    assert tiny_model in card and "2-4" in card  # fine-tuned from the tiny model; the forwarded flag won
    FSDiffPipeline.from_pretrained(output_dir)

    first = PIL.Image.open(sorted((data / "vi").iterdir())[0])
    assert sample == str(output_dir / "sample_fused.png")
    assert PIL.Image.open(sample).size == (128, 4 * round(first.height * 32 / first.width))
    assert "sample_fused.png" in capsys.readouterr().out


# push_to_hub.py ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [None, "fp16"])
def test_push_to_hub_uploads_and_dry_run_writes_the_same_folder(
    variant, fake_hub, hub_offline, tiny_model, tmp_path  # noqa: F811 (fixtures imported from test_hub)
):
    flags = ["--variant", variant] if variant else []
    url = run("push_to_hub", "me/fsdiff-tiny", "--model", tiny_model, "--private", "--token", "hf_fake", *flags)

    assert url == "https://hub.invalid/me/fsdiff-tiny/commit/1"
    assert fake_hub.created == [{"repo_id": "me/fsdiff-tiny", "private": True, "token": "hf_fake", "exist_ok": True}]
    (upload,) = fake_hub.uploads
    uploaded = upload["folder"]
    weights = "diffusion_pytorch_model.fp16.safetensors" if variant else "diffusion_pytorch_model.safetensors"
    assert sorted(p.name for p in (uploaded / "unet").glob("*.safetensors")) == [weights]
    assert "me/fsdiff-tiny" in (uploaded / "README.md").read_text()
    reloaded = FSDiffPipeline.from_pretrained(uploaded, variant=variant)
    expected_dtype = torch.float16 if variant else torch.float32
    assert next(iter(load_file(uploaded / "unet" / weights).values())).dtype == expected_dtype
    original = FSDiffPipeline.from_pretrained(tiny_model).unet.state_dict()
    for key, tensor in reloaded.unet.state_dict().items():
        torch.testing.assert_close(tensor.float(), original[key].to(expected_dtype).float(), rtol=0, atol=0)

    preview = tmp_path / "preview"
    assert run("push_to_hub", "me/fsdiff-tiny", "--model", tiny_model, "--dry_run", preview, *flags) == str(preview)
    files = sorted(p.relative_to(uploaded) for p in uploaded.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(preview) for p in preview.rglob("*") if p.is_file())
    for name in files:
        assert (preview / name).read_bytes() == (uploaded / name).read_bytes(), name
    assert len(fake_hub.uploads) == 1 and hub_offline == []  # the dry run uploaded nothing

    with pytest.raises(SystemExit, match="not empty"):
        run("push_to_hub", "me/fsdiff-tiny", "--model", tiny_model, "--dry_run", preview)


# make_gallery.py ---------------------------------------------------------------------------------------------------


def test_make_gallery_writes_the_readme_table(data_dir, tmp_path, monkeypatch):
    gallery = example("make_gallery")
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- gallery:start -->\nold table\n<!-- gallery:end -->\nafter\n")
    monkeypatch.setattr(gallery, "README", readme)
    monkeypatch.setattr(gallery, "GALLERY_DIR", tmp_path / "gallery")
    run("make_gallery", "--data", data_dir)

    images = sorted((tmp_path / "gallery").iterdir())
    assert len(images) == len(gallery.GALLERY) * len(gallery.COLUMNS)
    assert all(PIL.Image.open(path).size == (256, 256) for path in images)  # centre crops of the x4 outputs
    written = readme.read_text()
    assert written.startswith("before\n<!-- gallery:start -->\n| pair")
    assert written.endswith("<!-- gallery:end -->\nafter\n")
    table = written.split("<!-- gallery:start -->")[1].split("<!-- gallery:end -->")[0]
    assert all(f'src="gallery/{path.name}"' in table for path in images)
    committed = (gallery.REPO_ROOT / "README.md").read_text().split("<!-- gallery:start -->")[1]
    assert committed.startswith(table.replace('src="gallery/', 'src="examples/gallery/'))  # the README is up to date
