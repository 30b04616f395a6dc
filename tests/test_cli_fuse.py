"""End-to-end tests of `fsdiff fuse`, on a tiny saved pipeline (fast) and, where present, the shipped model."""

import os
import re
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from fsdiff_diffusers import DEFAULT_MODEL, FSDiffPipeline
from fsdiff_diffusers.cli import build_parser, main
from fsdiff_diffusers.cli import fuse as cli_fuse
from fsdiff_diffusers.cli.progress import StepReporter, duration
from fsdiff_diffusers.example_pair import HIDDEN_WARM_OBJECTS, example_pair
from fsdiff_diffusers.pipelines import hub

from .conftest import DATA_DIR

HAS_DEFAULT_MODEL = os.path.isfile(os.path.join(DEFAULT_MODEL, "model_index.json"))
NO_DEFAULT_MODEL = f"the shipped weights are not in this checkout ({DEFAULT_MODEL} has no model_index.json)"


@pytest.fixture
def pair_files(tmp_path: Path) -> tuple:
    """The synthetic example pair at 32x24, written as ir.png and vi.png."""
    infrared, visible = example_pair(32, 24)
    infrared.save(tmp_path / "ir.png")
    visible.save(tmp_path / "vi.png")
    return tmp_path / "ir.png", tmp_path / "vi.png"


def run(*args) -> int:
    """`fsdiff ARGS` (paths may be given as `Path`)."""
    return main([str(arg) for arg in args])


def fuse(model: Path, *args) -> int:
    return run("fuse", "--model", model, "--steps", "1", *args)


def fuse_pair(model: Path, pair_files: tuple, out: Path, *args) -> int:
    return fuse(model, "--infrared", pair_files[0], "--visible", pair_files[1], "-o", out, *args)


# ----------------------------------------------------------------------------- one pair
def test_one_pair_matches_the_pipeline(model, pair_files, tmp_path, capsys):
    out = tmp_path / "out" / "fused.png"
    assert fuse_pair(model, pair_files, out, "--scale", "2", "--seed", "3") == 0
    stdout, stderr = capsys.readouterr()
    assert f"{out} (64x48, " in stdout and " s)" in stdout  # where it went, its size and the time it took
    assert "DPMSolverMultistepScheduler, 1 step" in stderr

    pipe = FSDiffPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        *(PIL.Image.open(path) for path in pair_files),
        scale=2,
        num_inference_steps=1,
        generator=torch.Generator().manual_seed(3),
    ).images[0]
    with PIL.Image.open(out) as written:
        assert (written.mode, written.size) == ("RGB", (64, 48))
        np.testing.assert_array_equal(np.asarray(written), np.asarray(expected))


def test_tile_size_matches_the_tiled_pipeline_and_bad_tiles_are_refused(model, pair_files, tmp_path, capsys):
    out = tmp_path / "tiled.png"
    assert fuse_pair(model, pair_files, out, "--scale", "2", "--tile-size", "32", "--tile-overlap", "8") == 0
    pipe = FSDiffPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    sources = [PIL.Image.open(path) for path in pair_files]
    kwargs = {"scale": 2, "num_inference_steps": 1, "tile_size": 32, "tile_overlap": 8}
    expected = pipe(*sources, generator=torch.Generator().manual_seed(0), **kwargs).images[0]
    untiled = pipe(*sources, scale=2, num_inference_steps=1, generator=torch.Generator().manual_seed(0)).images[0]
    with PIL.Image.open(out) as written:
        np.testing.assert_array_equal(np.asarray(written), np.asarray(expected))
        assert not np.array_equal(np.asarray(written), np.asarray(untiled))  # 2x2 tiles of the 72x56 canvas
    capsys.readouterr()
    assert fuse_pair(model, pair_files, tmp_path / "bad.png", "--tile-size", "2") == 2
    assert "`tile_size` must be an int of at least 4" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()


def test_size_format_and_dtype(model, pair_files, tmp_path, capsys):
    out = tmp_path / "fused.jpg"
    assert fuse_pair(model, pair_files, out, "--size", "50x30") == 0
    with PIL.Image.open(out) as written:
        assert (written.format, written.size) == ("JPEG", (50, 30))

    out = tmp_path / "fused.tif"
    assert fuse_pair(model, pair_files, out, "--dtype", "bfloat16", "--device", "cpu") == 0
    assert "on cpu (bfloat16)" in capsys.readouterr().err
    with PIL.Image.open(out) as written:
        assert (written.format, written.size) == ("TIFF", (128, 96))  # --scale 4 by default

    with pytest.raises(SystemExit) as exit_info:
        fuse_pair(model, pair_files, out, "--size", "50x30", "--scale", "2")
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert fuse_pair(model, pair_files, tmp_path / "fused.gif") == 2
    assert "must be an image file ending in .png" in capsys.readouterr().err


def test_existing_output_is_skipped_unless_overwrite(model, pair_files, tmp_path, capsys):
    out = tmp_path / "fused.png"
    PIL.Image.new("L", (4, 4)).save(out)
    assert fuse_pair(model, pair_files, out) == 0
    assert f"skipped ir.png + vi.png: {out} exists (pass --overwrite to replace it)" in capsys.readouterr().err
    assert PIL.Image.open(out).size == (4, 4)

    assert fuse_pair(model, pair_files, out, "--overwrite") == 0
    assert PIL.Image.open(out).size == (128, 96)


def test_missing_input_file_is_a_usage_error(model, pair_files, tmp_path, capsys):
    status = fuse(model, "--infrared", tmp_path / "nope.png", "--visible", pair_files[1], "-o", tmp_path / "f.png")
    assert status == 2 and "nope.png' does not exist" in capsys.readouterr().err
    status = fuse(model, "--infrared", pair_files[0], "--visible", tmp_path, "-o", tmp_path / "f.png")
    assert status == 2 and "two image files or two folders" in capsys.readouterr().err


# ----------------------------------------------------------------------------- folders
def test_folders_name_broken_mismatched_and_unmatched_files(model, tmp_path, capsys):
    for stem, (width, height) in (("a", (32, 24)), ("b", (40, 30)), ("broken", (32, 24)), ("small", (32, 24))):
        infrared, visible = example_pair(width, height, seed=len(stem))
        (tmp_path / "ir").mkdir(exist_ok=True), (tmp_path / "vi").mkdir(exist_ok=True)
        infrared.save(tmp_path / "ir" / f"{stem}.png")
        visible.save(tmp_path / "vi" / f"{stem}.jpg")
    (tmp_path / "vi" / "broken.jpg").write_bytes(b"not a JPEG")
    example_pair(48, 36)[1].save(tmp_path / "vi" / "small.jpg")
    example_pair(32, 24)[0].save(tmp_path / "ir" / "lonely.png")
    out = tmp_path / "out"
    args = ("--infrared", tmp_path / "ir", "--visible", tmp_path / "vi", "-o", out, "--scale", "1.5")

    assert fuse(model, *args) == 1
    stdout, stderr = capsys.readouterr()
    assert "lonely.png" in stderr and "without a partner" in stderr  # the unmatched file is named
    assert "broken.jpg" in stderr and "Cannot read visible image" in stderr
    assert "small.jpg" in stderr and "36x48" in stderr and "24x32" in stderr  # both sizes, H x W
    assert "2 of 4 pairs failed: broken, small" in stderr
    assert "fused 2 of 4 pairs into" in stdout and "s per image" in stdout
    assert sorted(path.name for path in out.iterdir()) == ["a.png", "b.png"]
    assert PIL.Image.open(out / "b.png").size == (60, 45)

    written = (out / "a.png").stat().st_mtime_ns
    assert fuse(model, *args, "--format", "jpg") == 1  # a new format: new files, the same failures
    assert sorted(path.name for path in out.iterdir()) == ["a.jpg", "a.png", "b.jpg", "b.png"]
    capsys.readouterr()
    assert fuse(model, *args) == 1  # again: the good pairs are skipped, the bad ones fail again
    assert "skipped a:" in capsys.readouterr().err and (out / "a.png").stat().st_mtime_ns == written


# ----------------------------------------------------------------------------- schedulers
@pytest.mark.parametrize(
    "name, expected",
    [("UniPC", "UniPCMultistepScheduler"), ("ddimscheduler", "DDIMScheduler"), ("dpm++", "DPMSolver")],
)
def test_scheduler_alias_and_class_name(model, pair_files, tmp_path, capsys, name, expected):
    assert fuse_pair(model, pair_files, tmp_path / "f.png", "--scale", "1", "--scheduler", name) == 0
    assert f"{expected}" in capsys.readouterr().err


def test_scheduler_errors(model, pair_files, tmp_path, capsys):
    assert fuse_pair(model, pair_files, tmp_path / "f.png", "--scheduler", "fancy") == 2
    stderr = capsys.readouterr().err
    assert "unknown scheduler 'fancy'" in stderr
    assert "unipc" in stderr and "EulerDiscreteScheduler" in stderr and "HeunDiscreteScheduler" in stderr

    # PNDM cannot sample a U-Net that predicts the sample: refused before any image is fused.
    assert fuse_pair(model, pair_files, tmp_path / "f.png", "--scheduler", "pndm", "--steps", "5") == 2
    assert "PNDMScheduler scheduler cannot sample this model" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


# ----------------------------------------------------------------------------- model and device
def test_missing_model_messages(pair_files, tmp_path, capsys, monkeypatch):
    assert fuse_pair(tmp_path / "no_such_model", pair_files, tmp_path / "f.png") == 2
    assert "cannot load the model" in capsys.readouterr().err

    (tmp_path / "empty_model").mkdir()
    assert fuse_pair(tmp_path / "empty_model", pair_files, tmp_path / "f.png") == 2
    assert "holds no model_index.json" in capsys.readouterr().err

    missing = str(tmp_path / "weights" / "fsdiff-ir-vis")
    monkeypatch.setattr(hub, "SHIPPED_MODELS", {"fsdiff-ir-vis": missing})
    assert fuse_pair("fsdiff-ir-vis", pair_files, tmp_path / "f.png") == 2
    stderr = capsys.readouterr().err
    assert "shipped with fsdiff-diffusers is missing" in stderr and "pip install --force-reinstall" in stderr


def test_shipped_model_names_resolve(model, pair_files, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "SHIPPED_MODELS", {"fsdiff-medical": str(model)})
    assert fuse_pair("fsdiff-medical", pair_files, tmp_path / "f.png") == 0
    assert (tmp_path / "f.png").is_file()


def test_cuda_requested_without_cuda(model, pair_files, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert fuse_pair(model, pair_files, tmp_path / "f.png", "--device", "cuda") == 2
    assert "--device cuda was asked for" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        fuse_pair(model, pair_files, tmp_path / "f.png", "--device", "gpu")
    assert exit_info.value.code == 2 and "'gpu' is not a device" in capsys.readouterr().err


def test_out_of_memory_fails_that_pair_only(model, tmp_path, capsys, monkeypatch):
    for stem in ("big", "fine"):
        for folder, image in zip(("ir", "vi"), example_pair(32, 24)):
            (tmp_path / folder).mkdir(exist_ok=True)
            image.save(tmp_path / folder / f"{stem}.png")
    calls = []

    def short_of_memory_once(pipe, *args, **kwargs):  # the first pair, "big", runs out of memory
        calls.append(args)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return fsdiff_call(pipe, *args, **kwargs)

    fsdiff_call = FSDiffPipeline.__call__
    monkeypatch.setattr(FSDiffPipeline, "__call__", short_of_memory_once)
    assert fuse(model, "--infrared", tmp_path / "ir", "--visible", tmp_path / "vi", "-o", tmp_path / "out") == 1
    assert "error: big: out of memory on cpu" in capsys.readouterr().err
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["fine.png"]


# ----------------------------------------------------------------------------- help
def test_help_reads_like_a_tool(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert re.findall(r"^    (\w+) ", out, re.MULTILINE) == ["fuse", "example", "evaluate", "baseline", "demo"]
    assert "fsdiff fuse --infrared" in out

    with pytest.raises(SystemExit):
        main(["fuse", "--help"])
    out = capsys.readouterr().out
    for group in ("inputs and outputs:", "output size (one of):", "sampling:", "model and hardware:", "examples:"):
        assert group in out
    examples = [line.split()[1:] for line in out.split("examples:")[1].splitlines() if line.strip()]
    assert len(examples) == 3
    for example in examples:  # every example command line is valid
        assert build_parser().parse_args(example).run is cli_fuse.run_fuse


# ----------------------------------------------------------------------------- the shipped model
@pytest.mark.skipif(not HAS_DEFAULT_MODEL, reason=NO_DEFAULT_MODEL)
def test_shipped_model_shows_the_hidden_people(tmp_path, capsys):
    infrared, visible = example_pair()
    infrared.save(tmp_path / "ir.png")
    visible.save(tmp_path / "vi.png")
    out = tmp_path / "fused.png"
    assert (
        run("fuse", "--infrared", tmp_path / "ir.png", "--visible", tmp_path / "vi.png", "-o", out, "--steps", 1) == 0
    )
    fused = PIL.Image.open(out)
    assert (fused.mode, fused.size) == ("RGB", (640, 480))

    # The people hidden in the visible view, warm in the infrared one, stand out in the fused image.
    warm = np.asarray(infrared.resize(fused.size, PIL.Image.BICUBIC), dtype=np.float64)
    luminance = np.asarray(fused.convert("L"), dtype=np.float64)
    for left, top, right, bottom in HIDDEN_WARM_OBJECTS.values():
        box = (slice(int(top * 480), int(bottom * 480)), slice(int(left * 640), int(right * 640)))
        person = warm[box] > 180
        assert luminance[box][person].mean() - luminance[box][~person].mean() > 20


@pytest.mark.skipif(not HAS_DEFAULT_MODEL, reason=NO_DEFAULT_MODEL)
def test_shipped_model_on_a_real_tno_pair(tmp_path, capsys):
    if not (DATA_DIR / "TNO").is_dir():
        pytest.skip(f"real image pairs not found at {DATA_DIR} (the shared data folder beside the checkout)")
    sources = {}
    for folder in ("ir", "vi"):
        (tmp_path / folder).mkdir()
        with PIL.Image.open(DATA_DIR / "TNO" / folder / "01.png") as image:  # 768x576, grey stored as RGB
            small = image.resize((image.width // 4, image.height // 4), PIL.Image.BICUBIC)
        small.save(tmp_path / folder / "01.png")
        sources[folder] = np.asarray(small.convert("L").resize((small.width * 2, small.height * 2)), dtype=np.float64)
    out = tmp_path / "out"
    assert (
        run("fuse", "--infrared", tmp_path / "ir", "--visible", tmp_path / "vi", "-o", out, "--scale", 2, "--steps", 1)
        == 0
    )
    fused = PIL.Image.open(out / "01.png")
    assert (fused.mode, fused.size) == ("L", (384, 288))  # grey sources give a grey result
    average = (sources["ir"] + sources["vi"]) / 2
    assert np.corrcoef(np.asarray(fused, dtype=np.float64).ravel(), average.ravel())[0, 1] > 0.5


def test_step_reporter_warns_before_a_long_image_and_reports_steps_without_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    reporter = StepReporter("ir.png + vi.png", total=4, interval=0, long_run=0)
    for step in range(4):
        reporter(None, step, None, {})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("warning: ir.png + vi.png will take about") and "fewer --steps" in lines[0]
    steps = [line.split(",")[0] for line in lines[1:]]
    assert steps == ["ir.png + vi.png: step 2 of 4", "ir.png + vi.png: step 3 of 4"]
    assert duration(42) == "42 s" and duration(300) == "5.0 min" and duration(7200) == "2.0 h"


def test_default_steps_come_from_the_model(model, pair_files, tmp_path, capsys):
    assert fuse(model, "--infrared", pair_files[0], "--visible", pair_files[1], "-o", tmp_path / "f.png") == 0
    assert "1 step;" in capsys.readouterr().err  # --steps 1 given by fuse()
    saved = tmp_path / "model"
    pipe = FSDiffPipeline.from_pretrained(model)
    pipe.register_to_config(default_num_inference_steps=2)
    pipe.save_pretrained(saved)
    pair = ("--infrared", pair_files[0], "--visible", pair_files[1])
    assert run("fuse", "--model", saved, *pair, "-o", tmp_path / "g.png") == 0
    assert "2 steps (the model default)" in capsys.readouterr().err
