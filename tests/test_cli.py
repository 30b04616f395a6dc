"""End-to-end tests of the `fsdiff` command (`evaluate`, `baseline`) and of the folder pairing it relies on."""

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from fsdiff_diffusers import metrics, protocol
from fsdiff_diffusers.cli import main
from fsdiff_diffusers.pairing import UnmatchedFilesWarning, match_pairs, scan_pairs

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
FEW_METRICS = ["EN", "SD", "SF", "MI", "Qabf", "PSNR"]


def write_image(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(array).save(path)
    return path


def random_image(seed: int, shape=(24, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def triplets(tmp_path: Path) -> Path:
    """fused / ir / vi folders (visible images in colour, named *.PNG): good triplets a, b, c; a broken fused
    file d; a fused image e of the wrong size; a stem z found in the infrared folder only."""
    for index, stem in enumerate("abcde"):
        write_image(tmp_path / "ir" / f"{stem}.png", random_image(3 * index))
        write_image(tmp_path / "vi" / f"{stem}.PNG", random_image(3 * index + 1, (24, 32, 3)))
        write_image(
            tmp_path / "fused" / f"{stem}.png", random_image(3 * index + 2, (12, 16) if stem == "e" else (24, 32))
        )
    (tmp_path / "fused" / "d.png").write_bytes(b"this is not a PNG file")
    write_image(tmp_path / "ir" / "z.png", random_image(99))
    return tmp_path


def evaluate_args(root: Path, *extra: str) -> list:
    return [
        "evaluate",
        "--fused",
        str(root / "fused"),
        "--infrared",
        str(root / "ir"),
        "--visible",
        str(root / "vi"),
        *extra,
    ]


def direct_scores(root: Path, stem: str, names=FEW_METRICS, convention="vifb") -> dict:
    """What `metrics.evaluate` gives for one triplet of `root`, loaded independently of the CLI."""
    fused = np.asarray(PIL.Image.open(root / "fused" / f"{stem}.png"), dtype=np.float64)
    infrared = np.asarray(PIL.Image.open(root / "ir" / f"{stem}.png"), dtype=np.float64)
    visible = np.asarray(PIL.Image.open(next((root / "vi").glob(f"{stem}.*"))), dtype=np.float64)
    return metrics.evaluate(fused, infrared, visible, names, convention)


# ----------------------------------------------------------------------------- fsdiff evaluate
def test_evaluate_writes_scores_and_names_every_bad_file(triplets, tmp_path, capsys):
    csv_path, json_path = tmp_path / "scores.csv", tmp_path / "scores.json"
    status = main(evaluate_args(triplets, "--metrics", *FEW_METRICS, "--csv", str(csv_path), "--json", str(json_path)))
    out, err = capsys.readouterr()

    assert status == 1  # d and e failed; the others were still scored
    assert "z.png" in err and "without a partner" in err  # the unmatched file is named
    assert "d.png" in err and "Cannot read fused image" in err  # the broken file is named
    assert "e.png" in err and "12x16" in err and "24x32" in err  # the size mismatch names file and sizes
    assert "2 of 5 pairs failed: d, e" in err

    with open(csv_path) as file:
        rows = list(csv.DictReader(file))
    assert [row["name"] for row in rows] == ["a", "b", "c"]
    assert list(rows[0]) == ["name", *FEW_METRICS]
    for row in rows:
        expected = direct_scores(triplets, row["name"])
        assert {name: float(row[name]) for name in FEW_METRICS} == pytest.approx(expected, rel=1e-12)

    document = json.loads(json_path.read_text())
    assert document["convention"] == "vifb"
    assert list(document["images"]) == ["a", "b", "c"]
    assert set(document["failed"]) == {"d", "e"} and "d.png" in document["failed"]["d"]
    for name in FEW_METRICS:
        mean = np.mean([direct_scores(triplets, stem)[name] for stem in "abc"])
        assert document["mean"][name] == pytest.approx(mean, rel=1e-12)
        assert name in out  # the mean table
    assert "mean over 3 images" in out


def test_evaluate_all_metrics_case_insensitive_and_cddfuse(triplets, tmp_path, capsys):
    for stem in "de":  # keep the good pairs only
        (triplets / "fused" / f"{stem}.png").unlink()
    json_path = tmp_path / "scores.json"
    assert (
        main(
            evaluate_args(
                triplets, "--metrics", "en", "QABF", "ssim", "--convention", "cddfuse", "--json", str(json_path)
            )
        )
        == 0
    )
    document = json.loads(json_path.read_text())
    assert list(document["images"]["a"]) == ["EN", "Qabf", "SSIM"]
    assert document["images"]["b"] == pytest.approx(direct_scores(triplets, "b", ["EN", "Qabf", "SSIM"], "cddfuse"))


def test_evaluate_every_metric_by_default(tmp_path, capsys):
    for folder, seed in (("fused", 0), ("ir", 1), ("vi", 2)):
        write_image(tmp_path / folder / "scene.png", random_image(seed, (176, 180)))  # MS-SSIM needs 176x176
    assert main(evaluate_args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "mean over 1 image:" in out and all(f"  {name} " in out for name in metrics.METRICS)


def test_evaluate_bad_arguments(triplets, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(evaluate_args(triplets, "--metrics", "EN", "sharpness"))
    assert exit_info.value.code == 2 and "unknown metric 'sharpness'" in capsys.readouterr().err

    status = main(
        [
            "evaluate",
            "--fused",
            str(tmp_path / "nowhere"),
            "--infrared",
            str(triplets / "ir"),
            "--visible",
            str(triplets / "vi"),
        ]
    )
    assert status == 2 and "nowhere" in capsys.readouterr().err

    (tmp_path / "empty").mkdir()
    status = main(
        [
            "evaluate",
            "--fused",
            str(tmp_path / "empty"),
            "--infrared",
            str(triplets / "ir"),
            "--visible",
            str(triplets / "vi"),
        ]
    )
    assert status == 2 and "holds no images" in capsys.readouterr().err


# ----------------------------------------------------------------------------- fsdiff baseline
@pytest.mark.parametrize("scale, size", [(2, (48, 64)), (2.5, (60, 80))])
def test_baseline_upsamples_fuses_and_writes_png(tmp_path, scale, size, capsys):
    for stem in ("p1", "p2"):
        write_image(tmp_path / "ir" / f"{stem}.png", random_image(1))
        write_image(tmp_path / "vi" / f"{stem}.jpg", random_image(2, (24, 32, 3)))
    write_image(tmp_path / "vi" / "lonely.bmp", random_image(3))
    out = tmp_path / "out"
    status = main(
        [
            "baseline",
            "--method",
            "mean",
            "--infrared",
            str(tmp_path / "ir"),
            "--visible",
            str(tmp_path / "vi"),
            "--scale",
            str(scale),
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert sorted(path.name for path in out.iterdir()) == ["p1.png", "p2.png"]
    assert "lonely.bmp" in capsys.readouterr().err

    written = np.asarray(PIL.Image.open(out / "p1.png"))
    infrared = protocol.load_grey(tmp_path / "ir" / "p1.png")
    visible = protocol.load_grey(tmp_path / "vi" / "p1.jpg")
    assert written.shape == size
    np.testing.assert_array_equal(written, protocol.bicubic_fusion_baseline(infrared, visible, scale, "mean"))


def test_baseline_names_broken_and_mismatched_files(tmp_path, capsys):
    write_image(tmp_path / "ir" / "good.png", random_image(1))
    write_image(tmp_path / "vi" / "good.png", random_image(2))
    write_image(tmp_path / "ir" / "small.png", random_image(3, (10, 10)))
    write_image(tmp_path / "vi" / "small.png", random_image(4))
    (tmp_path / "ir" / "broken.tif").write_bytes(b"\x00\x01 not a TIFF")
    write_image(tmp_path / "vi" / "broken.png", random_image(5))
    args = [
        "baseline",
        "--method",
        "gff",
        "--infrared",
        str(tmp_path / "ir"),
        "--visible",
        str(tmp_path / "vi"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "broken.tif" in err and "small.png" in err and "10x10" in err
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["good.png"]

    for scale, message in (("0.5", "below 1"), ("inf", "not a finite number"), ("four", "not a finite number")):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--scale", scale])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


# ----------------------------------------------------------------------------- help
def test_help_lists_commands_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "evaluate" in out and "baseline" in out and "examples:" in out
    for command in ("evaluate", "baseline"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out


def test_console_script_help():
    if shutil.which("fsdiff") is None:
        pytest.skip("the `fsdiff` console script is not installed (pip install -e .)")
    result = subprocess.run(["fsdiff", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "fsdiff evaluate" in result.stdout


# ----------------------------------------------------------------------------- pairing
def test_match_pairs_by_stem_with_warning(tmp_path):
    for stem in ("02", "01", "03"):
        write_image(tmp_path / "a" / f"{stem}.png", random_image(0))
    for name in ("01.JPG", "02.tiff", "04.png"):
        write_image(tmp_path / "b" / name, random_image(0, (24, 32, 3)))
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    with pytest.warns(UnmatchedFilesWarning, match=r"infrared: 03\.png; visible: 04\.png"):
        pairs = match_pairs(tmp_path / "a", tmp_path / "b")
    assert [pair.stem for pair in pairs] == ["01", "02"]
    assert pairs[1]["visible"] == tmp_path / "b" / "02.tiff"

    matching = scan_pairs(tmp_path / "a", tmp_path / "b", tmp_path / "a", names=("x", "y", "z"))
    assert matching.unmatched == {"x": ["03.png"], "y": ["04.png"], "z": ["03.png"]}


def test_match_pairs_errors(tmp_path):
    write_image(tmp_path / "a" / "01.png", random_image(0))
    write_image(tmp_path / "b" / "02.png", random_image(0))
    with pytest.raises(ValueError, match="No image name is present in every folder"):
        match_pairs(tmp_path / "a", tmp_path / "b")
    write_image(tmp_path / "b" / "02.jpg", random_image(0))
    with pytest.raises(ValueError, match=r"two images named '02' \(02\.jpg and 02\.png\)"):
        match_pairs(tmp_path / "a", tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="visible folder"):
        match_pairs(tmp_path / "a", tmp_path / "missing")
    with pytest.raises(ValueError, match="Pass `names`"):
        match_pairs(tmp_path / "a", tmp_path / "b", tmp_path / "a")


# ----------------------------------------------------------------------------- real data
def test_baseline_then_evaluate_on_tno_matches_the_metrics(tmp_path):
    if not (DATA_DIR / "TNO").is_dir():
        pytest.skip(f"real image pairs not found at {DATA_DIR}")
    expected = {}
    for stem in ("01", "05"):
        infrared = protocol.load_grey(DATA_DIR / "TNO" / "ir" / f"{stem}.png", "infrared")
        visible = protocol.load_grey(DATA_DIR / "TNO" / "vi" / f"{stem}.png", "visible")
        pair = protocol.make_pair(infrared, visible, scale=4)
        for folder, image in (
            ("hr_ir", pair.infrared),
            ("hr_vi", pair.visible),
            ("lr_ir", pair.infrared_lr),
            ("lr_vi", pair.visible_lr),
        ):
            write_image(tmp_path / folder / f"{stem}.png", image)
        fused = protocol.bicubic_fusion_baseline(pair.infrared_lr, pair.visible_lr, 4, "laplacian")
        expected[stem] = metrics.evaluate(fused, pair.infrared, pair.visible)

    baseline = [
        "baseline",
        "--method",
        "laplacian",
        "--infrared",
        str(tmp_path / "lr_ir"),
        "--visible",
        str(tmp_path / "lr_vi"),
    ]
    assert main([*baseline, "--scale", "4", "--out", str(tmp_path / "fused")]) == 0
    json_path = tmp_path / "scores.json"
    evaluate = [
        "evaluate",
        "--fused",
        str(tmp_path / "fused"),
        "--infrared",
        str(tmp_path / "hr_ir"),
        "--visible",
        str(tmp_path / "hr_vi"),
    ]
    assert main([*evaluate, "--json", str(json_path)]) == 0
    scores = json.loads(json_path.read_text())["images"]
    for stem, values in expected.items():
        assert scores[stem] == pytest.approx(values, rel=1e-12)
