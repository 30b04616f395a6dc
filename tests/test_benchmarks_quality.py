"""Quick checks of `benchmarks/quality.py` and `benchmarks/sampler_sweep.py`: their verdict logic on constructed
numbers, and both scripts end to end with tiny random pipelines (also standing in for the shipped models) on one small
crop of a real test pair, writing into temporary files only (never the repository's RESULTS.md or figures)."""

import json
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from fsdiff_diffusers import FSDiffPipeline

from .conftest import DATA_DIR, tiny_pipeline

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import quality  # noqa: E402
import sampler_sweep  # noqa: E402
import sampler_sweep_runs  # noqa: E402
from sampler_sweep import SweepRun  # noqa: E402

# The scripts' --threads sets torch's thread count for the whole process: put it back after each test.
pytestmark = pytest.mark.usefixtures("one_thread")

needs_data = pytest.mark.skipif(
    not DATA_DIR.is_dir(),
    reason=f"real image pairs not found at {DATA_DIR} (the shared data folder beside the checkout)",
)


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "pipeline"
    tiny_pipeline().save_pretrained(path)
    return path


@pytest.fixture
def outputs(tmp_path) -> list:
    """`--results` and `--figures_dir` in `tmp_path`; afterwards, checks that the repository's RESULTS.md and
    figures were left alone (other benchmarks may write them meanwhile, so only what these tests would write)."""
    written = ["sampler_sweep.png", "quality_x4.png", "quality_grid_x4_TNO.png", "quality_grid_x4_Harvard_MRI_CT.png"]
    figures = {name: BENCHMARKS / "figures" / name for name in written}
    before = {name: path.exists() and path.stat().st_mtime_ns for name, path in figures.items()}
    yield ["--results", str(tmp_path / "RESULTS.md"), "--figures_dir", str(tmp_path / "figures")]
    assert {name: path.exists() and path.stat().st_mtime_ns for name, path in figures.items()} == before
    assert str(tmp_path) not in (BENCHMARKS / "RESULTS.md").read_text()


# ----------------------------------------------------------------------------- quality.py: target check
def scores_with(values: dict) -> quality.Scores:
    return {name: values.get(name, 1.0) for name in quality.TARGET_METRICS + quality.EDGE_METRICS}


def test_target_check_counts_wins_over_the_best_baseline_of_each_metric():
    names = quality.TARGET_METRICS
    baselines = {
        "bicubic + a": scores_with({name: 2.0 for name in names[:5]}),  # best on EN, SD, SF, AG, MI
        "bicubic + b": scores_with({name: 3.0 for name in names[5:]}),  # best on SCD, VIF, Qabf, SSIM
    }
    baselines["bicubic + b"]["Q_ir"] = 3.0
    # beats a (2.0) on EN..MI, ties b (3.0) on SCD, beats b on VIF, loses to it on Qabf, SSIM; Q_ir and Q_vi are
    # checked apart: it ties b on Q_ir (enough: at least the best) and falls short on Q_vi
    fsdiff = scores_with({**{name: 2.5 for name in names[:5]}, "SCD": 3.0, "VIF": 3.1, "Qabf": 2.9, "SSIM": 0.1})
    fsdiff.update({"Q_ir": 3.0, "Q_vi": 0.5})
    scores = {**baselines, "FS-Diff": fsdiff}
    check = quality.target_check(scores, "FS-Diff", list(baselines))
    assert check.wins == ["EN", "SD", "SF", "AG", "MI", "VIF"]  # a tie is no win
    assert check.best["SCD"] == ("bicubic + b", 3.0) and check.best["EN"] == ("bicubic + a", 2.0)
    assert check.passed and check.summary().startswith("PASS: 6 of 9 (needs 6)")
    assert "Qabf 2.9 <= 3 (bic+b)" in check.details() and "VIF 3.1 > 3 (bic+b)" in check.details()
    assert check.edges == {"Q_ir": ("bicubic + b", 3.0), "Q_vi": ("bicubic + a", 1.0)} and "Q_ir" not in check.best
    assert check.matched == ["Q_ir"] and not check.edges_matched
    assert check.edge_summary() == (
        "Q_ir and Q_vi each at least the best baseline's: MISS: Q_ir 3 >= 3 (bic+b); Q_vi 0.5 < 1 (bic+a)"
    )
    scores["FS-Diff"]["Q_vi"] = 1.0
    check = quality.target_check(scores, "FS-Diff", list(baselines))
    assert check.edges_matched and "at least the best baseline's: PASS: Q_ir 3 >= 3" in check.edge_summary()

    scores["FS-Diff"] = {**fsdiff, "VIF": 2.0}
    check = quality.target_check(scores, "FS-Diff", list(baselines))
    assert not check.passed and check.summary().startswith("MISS: 5 of 9 (needs 6)")
    assert quality.best_baseline(scores, list(baselines)) == "bicubic + a"  # best on 5 of the 9


def test_target_check_respects_lower_is_better():
    scores = {"bicubic + a": {"Nabf": 0.1}, "bicubic + b": {"Nabf": 0.05}, "FS-Diff": {"Nabf": 0.07}}
    check = quality.target_check(
        scores, "FS-Diff", ["bicubic + a", "bicubic + b"], names=["Nabf"], required=1, edge_names=[]
    )
    assert check.best == {"Nabf": ("bicubic + b", 0.05)} and check.wins == [] and not check.passed


def test_target_line_and_table_come_from_the_checks():
    scores = {"bicubic + a": scores_with({}), "FS-Diff": scores_with({"EN": 2.0})}
    checks = {("TNO", 4): quality.target_check(scores, "FS-Diff", ["bicubic + a"])}
    line = quality.target_line(checks)
    assert "TNO x4" in line and "MISS: 1 of 9 (needs 6): wins EN" in line
    assert "**Q_ir and Q_vi each at least the best baseline's: PASS: Q_ir 1 >= 1 (bic+a); Q_vi 1 >= 1" in line
    table = quality.target_table(checks, "TNO", [2, 4]).splitlines()
    assert table[2].startswith("| scale | wins | EN |") and table[4].startswith("| x4 | 1 / 9 | **2**")
    assert table[2].endswith("| SSIM | Q_ir | Q_vi | Q_ir and Q_vi at least best |")
    assert table[4].endswith("| **1** vs 1 (bic+a) | **1** vs 1 (bic+a) | yes |")  # a tie is enough for these
    assert len(table) == 5  # only the scale that has a check
    assert quality.target_line({}) == "" and quality.target_table(checks, "MSRS", [4]) == ""


def test_centre_crop():
    image = np.arange(10 * 12).reshape(10, 12)
    np.testing.assert_array_equal(quality.centre_crop(image, 4), image[3:7, 4:8])
    assert quality.centre_crop(image, 11).shape == (10, 11) and quality.centre_crop(image, None) is image


def test_pipeline_default_is_the_shipped_model(monkeypatch):
    from fsdiff_diffusers import DEFAULT_MODEL, FSDiffPipeline

    loaded = []
    monkeypatch.setattr(
        FSDiffPipeline,
        "from_pretrained",
        classmethod(lambda cls, path, **kwargs: loaded.append(path) or tiny_pipeline()),
    )
    pipe = quality.load_pipeline("default", scheduler="DDIMScheduler")
    assert loaded == [DEFAULT_MODEL] and type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert pipe.scheduler.config.prediction_type == pipe.unet.config.prediction_type


# ----------------------------------------------------------------------------- sampler_sweep.py: verdicts and tables
def run(scheduler: str, steps: int, factor: float, seconds: float = 1.0) -> SweepRun:
    """A run whose every metric is `factor` times the reference's (1.0), its last one twice as far off and Q_vi
    (shown, not judged) ten times."""
    scores = {name: factor for name in sampler_sweep.METRICS}
    scores["SSIM"] = 1 + 2 * (factor - 1)
    scores["Q_vi"] = 1 + 10 * (factor - 1)
    return SweepRun(scheduler, steps, scores, seconds, float(steps))


REFERENCE = run("DDPM", 1000, 1.0, seconds=100.0)


def test_relative_difference():
    assert sampler_sweep_runs.relative_difference(0.99, -1.0) == pytest.approx(1.99)
    assert sampler_sweep_runs.relative_difference(1.01, 1.0) == pytest.approx(0.01)
    assert sampler_sweep_runs.relative_difference(0.0, 0.0) == 0
    assert sampler_sweep_runs.relative_difference(1, 0) == np.inf


def test_smallest_within_and_verdict():
    runs = [run("DPM-Solver++", 4, 1.10), run("DPM-Solver++", 8, 1.004), run("DPM-Solver++", 16, 1.02)]
    runs += [run("DDIM", 4, 1.2), run("DDIM", 25, 1.003)]
    assert sampler_sweep.smallest_within(runs[:3], REFERENCE).steps == 8  # SSIM 0.8 % off, the rest 0.4 %
    assert sampler_sweep.smallest_within(runs[3:], REFERENCE).steps == 25
    assert sampler_sweep.verdict(runs, REFERENCE, "DPM-Solver++").startswith("**PASS**")
    assert "8 steps (8 evaluations" in sampler_sweep.verdict(runs, REFERENCE, "DPM-Solver++")
    miss = sampler_sweep.verdict(runs, REFERENCE, "DDIM")
    assert miss.startswith("**MISS**") and "first gets there at 25 steps" in miss
    assert "At 4 steps (4 evaluations) it is off by EN 20.00 %" in miss and "SSIM 40.00 %" in miss
    assert "no step count tried" in sampler_sweep.verdict(runs[:1], REFERENCE, "DPM-Solver++")


def test_sweep_and_summary_tables():
    runs = [run("DDIM", 4, 1.2), run("DDIM", 8, 1.001), run("UniPC", 4, 1.05)]
    lines = sampler_sweep.sweep_table(runs, REFERENCE).splitlines()
    header = lines[0].split(" | ")
    assert len(lines) == 2 + 1 + len(runs) and header[1:4] == ["steps", "U-Net evals", "s/image"]
    assert header[4:-2] == quality.TARGET_METRICS + ["Q_ir", "Q_vi"]
    assert "| 3 (200.00 %) |" in lines[3]  # Q_vi: shown, but neither the worst difference nor judged
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert "(reference)" in lines[2] and lines[3].endswith("| 40.00 % (SSIM) | no |") and lines[4].endswith("| yes |")
    summary = sampler_sweep.summary_table(runs, REFERENCE, ["DDIM", "UniPC"]).splitlines()
    assert summary[2].startswith("| DDIM | 8 | 8 |") and summary[3].startswith("| UniPC | none of 4 |")
    assert "closest: 4 steps, 10.00 %" in summary[3]


# ----------------------------------------------------------------------------- both scripts end to end
@needs_data
def test_sampler_sweep_main(tiny_pipeline_dir, outputs, tmp_path):
    argv = ["--pipeline", str(tiny_pipeline_dir), "--limit", "1", "--crop", "64", "--steps", "4", "2"]
    argv += ["--reference_steps", "8", "--schedulers", "DDIM", "UniPC", "--threads", "1"]
    argv += ["--cache_dir", str(tmp_path / "cache"), *outputs]
    runs, reference, default = sampler_sweep.main(argv)
    assert default == "DPM-Solver++"  # the tiny pipeline's scheduler: added to the sweep
    assert [(r.scheduler, r.steps) for r in runs] == [(s, n) for s in ("DDIM", "UniPC", "DPM-Solver++") for n in (2, 4)]
    assert (reference.scheduler, reference.steps, reference.evaluations) == ("DDPM", 8, 8)
    assert all(r.evaluations == r.steps and r.seconds > 0 and r.cached == 0 for r in runs)
    assert list(reference.scores) == quality.TARGET_METRICS + ["Q_ir", "Q_vi"]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- sampler_sweep:start -->" in text and ("**PASS**" in text or "**MISS**" in text)
    assert "--reference_steps 8" in text and "](figures/sampler_sweep.png)" in text
    assert (tmp_path / "figures" / "sampler_sweep.png").stat().st_size > 0

    again, cached_reference, _ = sampler_sweep.main(argv + ["--no-write"])  # everything from the cache
    assert cached_reference.cached == 1 and all(r.cached == 1 for r in again)
    assert [r.scores for r in again] == [r.scores for r in runs]


@needs_data
def test_quality_main_runs_the_pipeline_on_infrared_visible_only(tiny_pipeline_dir, outputs, tmp_path):
    argv = ["--datasets", "TNO", "Harvard_MRI_CT", "--scales", "4", "--methods", "mean", "max"]
    argv += ["--pipeline", str(tiny_pipeline_dir), "--steps", "2", "--limit", "1", "--crop", "192", "--threads", "1"]
    measured = quality.main(argv + outputs)
    fsdiff = quality.fsdiff_name(2)
    assert measured.methods("TNO") == ["bicubic + mean", "bicubic + max", fsdiff]
    assert measured.methods("Harvard_MRI_CT") == ["bicubic + mean", "bicubic + max"]
    assert measured.seconds["TNO", 4, fsdiff] > 0
    assert list(measured.target_checks([4])) == [("TNO", 4)]

    text = (tmp_path / "RESULTS.md").read_text()
    assert "**Target check (TNO x4" in text and "Baselines only on Harvard_MRI_CT: not in `--pipeline_datasets`" in text
    assert f'The rows "{fsdiff}" are FS-Diff: `{tiny_pipeline_dir}`.' in text and "No FS-Diff rows here: not in" in text
    assert "| x4 | bicubic + max |" in text and f"| x4 | {fsdiff} |" in text and "s/image |" in text
    assert "| Qabf | Q_ir | Q_vi | Nabf |" in text and "Q_ir and Q_vi each at least the best baseline's: " in text
    tno, medical = (
        PIL.Image.open(tmp_path / "figures" / f"quality_grid_x4_{name}.png") for name in ("TNO", "Harvard_MRI_CT")
    )
    width, height = quality.GRID_TILE
    assert tno.size == (4 * width, height + 14) and medical.size == (3 * width, height + 14)
    assert "](figures/quality_grid_x4_TNO.png)" in text and (tmp_path / "figures" / "quality_x4.png").exists()


# ----------------------------------------------------------------------------- quality.py --pipeline default
@pytest.fixture(scope="module")
def tiny_medical_dir(tmp_path_factory) -> Path:
    """A second tiny pipeline (other weights), standing in for the shipped medical model."""
    path = tmp_path_factory.mktemp("tiny_medical") / "pipeline"
    tiny_pipeline(seed=1).save_pretrained(path)
    return path


@pytest.fixture
def shipped(monkeypatch, tiny_pipeline_dir, tiny_medical_dir, tmp_path):
    """Points the module's IR_VIS_MODEL / MEDICAL_MODEL at the tiny pipelines (`shipped(medical=False)`: the medical
    one at an empty folder) and records every pipeline loaded."""
    loaded = []
    load = quality.load_pipeline
    monkeypatch.setattr(
        quality, "load_pipeline", lambda path, *args, **kwargs: loaded.append(path) or load(path, *args, **kwargs)
    )

    def point(medical: bool = True) -> list:
        empty = tmp_path / "fsdiff-medical"
        empty.mkdir(exist_ok=True)
        monkeypatch.setattr(quality, "IR_VIS_MODEL", str(tiny_pipeline_dir))
        monkeypatch.setattr(quality, "MEDICAL_MODEL", str(tiny_medical_dir if medical else empty))
        return loaded

    return point


@needs_data
def test_pipeline_datasets_default_follows_the_shipped_models(shipped):
    shipped(medical=True)
    assert quality.parse_args(["--pipeline", "default"]).pipeline_datasets == [*quality.split_stems(), quality.HKDNET]
    assert quality.parse_args(["--pipeline", "x"]).pipeline_datasets == list(quality.PIPELINE_DATASETS)
    shipped(medical=False)
    args = quality.parse_args(["--pipeline", "default"])
    assert args.pipeline_datasets == ["TNO", "MSRS", "LLVIP", quality.HKDNET]
    plan = quality.plan_fsdiff(quality.parse_args(["--pipeline", "default", "--datasets", "TNO"]))
    assert [model.path for model in plan.models] == [quality.IR_VIS_MODEL] and plan.baselines_only == {}
    plan = quality.plan_fsdiff(quality.parse_args(["--pipeline", "default", "--pipeline_datasets", "MSRS"]))
    assert plan.model_of("MSRS").path == quality.IR_VIS_MODEL and plan.model_of("TNO") is None
    assert "not in `--pipeline_datasets`" in plan.baselines_only["TNO"]
    assert "no model_index.json" in plan.baselines_only["Harvard_MRI_PET"]


@needs_data
def test_quality_default_runs_each_dataset_with_the_model_of_its_modality(shipped, tiny_medical_dir, outputs, tmp_path):
    loaded = shipped(medical=True)
    argv = ["--pipeline", "default", "--datasets", "TNO", "Harvard_MRI_CT", "--scales", "4", "--methods", "mean"]
    argv += ["--steps", "1", "--limit", "1", "--crop", "176", "--threads", "1"]
    measured = quality.main(argv + outputs)
    fsdiff = quality.fsdiff_name(1)
    assert loaded == [quality.IR_VIS_MODEL, str(tiny_medical_dir)]  # each once
    assert measured.methods("TNO") == measured.methods("Harvard_MRI_CT") == ["bicubic + mean", fsdiff]
    assert list(measured.target_checks([4])) == [("TNO", 4), ("Harvard_MRI_CT", 4)]
    (images,) = measured.grid["Harvard_MRI_CT"].values()  # made by the medical model (MRI as infrared=)
    medical = quality.fsdiff_method(tiny_pipeline(seed=1), 1)(images["infrared_lr"], images["visible_lr"], 4)
    # the saved-and-loaded model and the in-memory one differ by float rounding (~1e-4): a grey level at most
    np.testing.assert_allclose(images[fsdiff].astype(int), medical.astype(int), rtol=0, atol=1)

    text = (tmp_path / "RESULTS.md").read_text()
    assert "`fsdiff_diffusers.IR_VIS_MODEL` (the shipped infrared-visible model) on TNO; " in text
    assert "`fsdiff_diffusers.MEDICAL_MODEL` (the shipped medical model: MRI as `infrared=`" in text
    assert "Baselines only" not in text and "**Target check (TNO x4" in text
    harvard = text[text.index("### Harvard_MRI_CT") :]
    assert harvard.split("\n\n")[1].startswith(f'The rows "{fsdiff}" are FS-Diff: `fsdiff_diffusers.MEDICAL_MODEL`')
    assert f"| x4 | {fsdiff} |" in harvard and "](figures/quality_grid_x4_Harvard_MRI_CT.png)" in text


@needs_data
def test_quality_default_without_the_medical_model(shipped, outputs, tmp_path):
    loaded = shipped(medical=False)
    argv = ["--pipeline", "default", "--datasets", "TNO", "Harvard_MRI_CT", "--scales", "4", "--methods", "mean"]
    argv += ["--steps", "1", "--limit", "1", "--crop", "176", "--threads", "1"]
    measured = quality.main(argv + outputs)
    assert loaded == [quality.IR_VIS_MODEL]
    assert measured.methods("TNO") == ["bicubic + mean", quality.fsdiff_name(1)]
    assert measured.methods("Harvard_MRI_CT") == ["bicubic + mean"]
    text = (tmp_path / "RESULTS.md").read_text()
    reason = "`fsdiff_diffusers.MEDICAL_MODEL` (the shipped medical model: MRI as `infrared=`, CT / PET / SPECT as "
    reason += f"`visible=`) is not in this checkout (no model_index.json in `{tmp_path / 'fsdiff-medical'}`)"
    assert f"Baselines only on Harvard_MRI_CT: {reason}." in text
    assert f"No FS-Diff rows here: {reason}." in text[text.index("### Harvard_MRI_CT") :]


@needs_data
def test_quality_default_loads_only_the_models_it_needs(shipped, outputs, tmp_path):
    loaded = shipped(medical=True)
    argv = ["--pipeline", "default", "--scales", "4", "--methods", "mean", "--steps", "1", "--limit", "1"]
    argv += ["--crop", "176", "--threads", "1"]
    measured = quality.main([*argv, "--datasets", "TNO", "--no-write"])
    assert loaded == [quality.IR_VIS_MODEL] and measured.methods("TNO")[-1] == quality.fsdiff_name(1)

    loaded.clear()  # HKDnet_peer (infrared-visible) and no Harvard set: the medical model stays unloaded
    quality.main([*argv, "--datasets", "HKDnet_peer", *outputs])
    assert loaded == [quality.IR_VIS_MODEL]
    text = (tmp_path / "RESULTS.md").read_text()
    assert '"bicubic + mean" are our bicubic baselines; the rows "FS-Diff (1 steps)" are FS-Diff: ' in text
    assert "| FS-Diff (1 steps) |" in text and "on HKDnet_peer." in text

    loaded.clear()  # the medical set alone: only the medical model
    quality.main([*argv, "--datasets", "Harvard_MRI_SPECT", "--no-write"])
    assert loaded == [quality.MEDICAL_MODEL]


@needs_data
def test_validation_split_prints_and_saves_json_but_never_writes_the_report(tmp_path, outputs):
    argv = ["--split", "validation", "--datasets", "TNO_extra", "--scales", "4", "--methods", "max", "laplacian_max"]
    argv += ["--limit", "1", "--crop", "176", "--json", str(tmp_path / "v.json")]
    args = quality.parse_args(argv + outputs)
    assert args.no_write and args.datasets == ["TNO_extra"]
    assert quality.parse_args(["--split", "validation"]).datasets == list(quality.split_stems("validation"))
    quality.main(argv + outputs)
    saved = json.loads((tmp_path / "v.json").read_text())
    assert saved["split"] == "validation"
    assert set(saved["means"]["TNO_extra"]["4"]) == {"bicubic + max", "bicubic + laplacian_max"}
    assert not (tmp_path / "RESULTS.md").exists()
    assert not set(quality.split_stems("validation")) & set(quality.split_stems("test"))


def test_bench_fuse_times_the_default_settings_in_both_dtypes(tiny_pipeline_dir, capsys):
    import bench_fuse

    pipe = FSDiffPipeline.from_pretrained(tiny_pipeline_dir)
    pipe.register_to_config(default_num_inference_steps=2)
    folder = tiny_pipeline_dir.parent / "two_steps"
    pipe.save_pretrained(folder)
    rows, layout_rows = bench_fuse.main(["--models", str(folder), "--sizes", "16x12", "--repeats", "1", "--no-write"])
    assert [row[1] for row in rows] == ["float32", "bfloat16"] and rows[0][2].startswith("2 (")
    assert rows[0][4] == f"{64 * 48 / 1e6:.2f}" and float(rows[0][-1]) > 0
    assert [row[1] for row in layout_rows] == ["float32", "bfloat16"] and layout_rows[0][-2].endswith("x")
    assert float(layout_rows[0][-1]) < 0.5  # the layout changes the float rounding only
    assert "s / output MP" in capsys.readouterr().out


def test_bench_fuse_times_contiguous_model_inputs_inside_its_layout_context(tiny_pipeline_dir):
    import bench_fuse

    pipe = FSDiffPipeline.from_pretrained(tiny_pipeline_dir)
    layouts = []
    forward = pipe.unet.forward
    pipe.unet.forward = lambda sample, *args, **kwargs: (
        layouts.append(sample.is_contiguous(memory_format=torch.channels_last) and not sample.is_contiguous()),
        forward(sample, *args, **kwargs),
    )[1]
    pair = bench_fuse.input_pair(16, 12)
    with bench_fuse.model_inputs("NCHW"):
        bench_fuse.timed_call(pipe, *pair, 2.0)
    calls = len(layouts)
    with bench_fuse.model_inputs("NHWC"):
        bench_fuse.timed_call(pipe, *pair, 2.0)
    assert calls and not any(layouts[:calls]) and all(layouts[calls:])
