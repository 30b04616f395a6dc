"""Remote code: the self-contained modules `save_pretrained` writes beside the weights, generated from the package's
own source, and saved pipelines loaded with `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)` in a
process where this package cannot be imported: from a folder, from a Hub id (loopback server, see
`tests/hub_server.py`) and a shipped model re-saved."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fsdiff_diffusers import FSDiffPipeline, remote_code
from fsdiff_diffusers.pipelines.remote_layout import REMOTE_CODE_MARK

from . import hub_server
from .conftest import random_sources, two_step_fusion
from .conftest import tiny_pipeline as make_tiny_pipeline

REMOTE_CODE_FILES = {
    "pipeline_fsdiff.py": "pipeline_fsdiff",
    "unet/unet_fsdiff.py": "unet_fsdiff",
    "clarity_encoder/clarity_mamba.py": "clarity_mamba",
}

# Runs with this package and the optional libraries hidden (`sys.modules` holds None for them, so any import of them
# fails) and `python -I` (no current folder, no PYTHONPATH on sys.path): only torch, diffusers, safetensors,
# huggingface_hub and their own dependencies (numpy, Pillow, ...) are there to use.
HIDDEN = ("fsdiff_diffusers", "transformers", "accelerate", "scipy")
CLIENT = r"""
import json, sys
for name in sys.argv[4].split(","):
    sys.modules[name] = None
from pathlib import Path
import numpy as np, torch
from diffusers import DiffusionPipeline

source, work, kwargs = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
report = {"refusal": None}
try:
    DiffusionPipeline.from_pretrained(source, **kwargs)
except Exception as error:
    report["refusal"] = {"type": type(error).__name__, "message": str(error)}

pipe = DiffusionPipeline.from_pretrained(source, trust_remote_code=True, **kwargs)
pipe.set_progress_bar_config(disable=True)
report["classes"] = {
    name: f"{type(value).__module__}.{type(value).__name__}"
    for name, value in (("pipeline", pipe), ("unet", pipe.unet), ("clarity_encoder", pipe.clarity_encoder))
}
images = pipe(
    infrared=np.load(work / "infrared.npy"),
    visible=np.load(work / "visible.npy"),
    scale=2,
    num_inference_steps=2,
    output_type="np",
    generator=torch.Generator().manual_seed(0),
).images
np.save(work / "fused.npy", images)
pipe.save_pretrained(work / "resaved")
report["package_modules"] = sorted(
    name for name, module in sys.modules.items() if name.split(".")[0] in sys.argv[4].split(",") and module is not None
)
(work / "report.json").write_text(json.dumps(report))
"""


@pytest.fixture(scope="module")
def sources() -> tuple[np.ndarray, np.ndarray]:
    return random_sources(1)


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "fsdiff-tiny"
    make_tiny_pipeline().save_pretrained(folder)
    return folder


def _loaded_output(folder: Path, sources) -> np.ndarray:
    """The output of `FSDiffPipeline.from_pretrained(folder)`: the bitwise reference for every copy loaded from the
    same files (see `loaded_reference` in test_hub.py for why loaded copies are compared with each other)."""
    pipe = FSDiffPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return two_step_fusion(pipe, *sources)


@pytest.fixture(scope="module")
def loaded_reference(saved_pipeline, sources) -> np.ndarray:
    return _loaded_output(saved_pipeline, sources)


def _run_client(source: str, sources, tmp_path: Path, endpoint: str | None = None, **kwargs) -> dict:
    """Load `source` with Diffusers alone in a fresh interpreter (see `CLIENT`); its report, with its stderr."""
    work = tmp_path / "client"
    work.mkdir()
    np.save(work / "infrared.npy", sources[0])
    np.save(work / "visible.npy", sources[1])
    result = subprocess.run(
        [sys.executable, "-I", "-c", CLIENT, source, str(work), json.dumps(kwargs), ",".join(HIDDEN)],
        cwd=work,
        env=hub_server.client_env(tmp_path, endpoint),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"client failed:\n{result.stderr[-4000:]}"
    report = json.loads((work / "report.json").read_text())
    report.update(work=work, stderr=result.stderr)
    return report


def _check_remote_load(report: dict, saved: Path, reference: np.ndarray) -> None:
    """What every load with Diffusers alone must show: Diffusers' refusal without trust_remote_code, the classes from
    the saved modules, neither the package nor the optional libraries imported, no type or import warnings, the same
    output as FSDiffPipeline, and a re-save that writes the same layout."""
    assert report["refusal"] is not None, "Diffusers loaded the remote code without trust_remote_code=True"
    assert report["refusal"]["type"] == "ValueError"
    assert "contains custom code" in report["refusal"]["message"]
    assert "Pass `trust_remote_code=True`" in report["refusal"]["message"]
    assert report["classes"]["pipeline"].endswith("pipeline_fsdiff.FSDiffPipeline")
    assert report["classes"]["unet"].endswith("unet_fsdiff.FSDiffUNet2DModel")
    assert report["classes"]["clarity_encoder"].endswith("clarity_mamba.ClarityMambaEncoder")
    assert all(name.startswith("diffusers_modules.") for name in report["classes"].values()), report["classes"]
    assert report["package_modules"] == []
    for warning in ("Expected types", "might require the following packages", "cannot get type annotation"):
        assert warning not in report["stderr"], report["stderr"][-3000:]
    np.testing.assert_array_equal(np.load(report["work"] / "fused.npy"), reference)

    resaved = report["work"] / "resaved"
    for path in REMOTE_CODE_FILES:
        assert (resaved / path).read_text() == (saved / path).read_text(), path
    index, saved_index = (json.loads((folder / "model_index.json").read_text()) for folder in (resaved, saved))
    for key in ("_class_name", "unet", "clarity_encoder", "scheduler"):
        assert index[key] == saved_index[key], key


# 1. The generated modules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(remote_code.BUNDLES))
def test_bundles_stand_alone(name):
    source = remote_code.bundle_source(name)
    assert source == remote_code.bundle_source(remote_code.BUNDLES[name].module)  # either name, one result
    assert REMOTE_CODE_MARK in source
    compile(source, f"{name}.py", "exec")
    for line in source.splitlines():
        stripped = line.strip()
        assert not stripped.startswith(("from .", "import .")), line
        assert not stripped.startswith(("from fsdiff_diffusers", "import fsdiff_diffusers")), line
    # Every class the remote layout names is defined in its file, not imported.
    defined = {"pipeline_fsdiff": "FSDiffPipeline", "unet_fsdiff": "FSDiffUNet2DModel"}.get(name, "ClarityMambaEncoder")
    assert f"\nclass {defined}(" in source


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (the test extra has it)")
@pytest.mark.parametrize("name", sorted(remote_code.BUNDLES))
def test_bundles_pass_ruff(name):
    """`ruff check .` also reads the modules of the shipped folders (re-saved with `save_pretrained`)."""
    config = Path(__file__).resolve().parents[1] / "pyproject.toml"
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(config), "--stdin-filename", f"{name}.py", "-"],
        input=remote_code.bundle_source(name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_bundles_refuse_name_clashes_and_names_without_stand_in(tmp_path, monkeypatch):
    package = tmp_path / "fsdiff_diffusers"
    package.mkdir()
    (package / "__init__.py").write_text('__version__ = "0.0"\n')
    (package / "helpers.py").write_text("def scale(x):\n    return 2 * x\n")
    (package / "clash.py").write_text("from .helpers import scale\n\n\ndef scale(x):\n    return x\n")
    (package / "left.py").write_text("from .helpers import scale\n\nOTHER = 1\n")
    (package / "uses_left.py").write_text("from .left import OTHER, scale\n")
    monkeypatch.setattr(remote_code, "PACKAGE_DIR", package)
    monkeypatch.setattr(
        remote_code,
        "BUNDLES",
        {
            "clash": remote_code.Bundle(module="fsdiff_diffusers.clash"),
            "uses_left": remote_code.Bundle(
                module="fsdiff_diffusers.uses_left",
                left_out={"fsdiff_diffusers.left": (remote_code.StandIn("scale", "abs"),)},
            ),
        },
    )
    with pytest.raises(remote_code.BundleError, match="'scale' is defined both in fsdiff_diffusers.helpers and in"):
        remote_code.bundle_source("clash")
    with pytest.raises(remote_code.BundleError, match="imports OTHER from fsdiff_diffusers.left.*without a stand-in"):
        remote_code.bundle_source("uses_left")
    with pytest.raises(remote_code.BundleError, match="No remote-code bundle"):
        remote_code.bundle_source("fsdiff_diffusers.helpers")


# 2. The saved layout, loaded with the package ----------------------------------------------------------------------


def test_save_pretrained_writes_the_remote_code_layout(saved_pipeline):
    index = json.loads((saved_pipeline / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_fsdiff", "FSDiffPipeline"]
    assert index["unet"] == ["unet_fsdiff", "FSDiffUNet2DModel"]
    assert index["clarity_encoder"] == ["clarity_mamba", "ClarityMambaEncoder"]
    assert index["scheduler"] == ["diffusers", "DPMSolverMultistepScheduler"]
    for path, name in REMOTE_CODE_FILES.items():
        assert (saved_pipeline / path).read_text() == remote_code.bundle_source(name), path


@pytest.mark.parametrize("layout", ["remote code", "before remote code"])
def test_fsdiff_pipeline_loads_both_layouts_with_the_package_classes(
    layout, saved_pipeline, sources, loaded_reference, tmp_path
):
    folder = Path(shutil.copytree(saved_pipeline, tmp_path / "copy"))
    if layout == "before remote code":
        hub_server.to_old_layout(folder)
    pipe = FSDiffPipeline.from_pretrained(folder)
    assert type(pipe) is FSDiffPipeline
    assert type(pipe.unet).__module__ == "fsdiff_diffusers.models.unet_fsdiff"
    assert type(pipe.clarity_encoder).__module__ == "fsdiff_diffusers.models.clarity_mamba"
    pipe.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(two_step_fusion(pipe, *sources), loaded_reference)

    pipe.save_pretrained(tmp_path / "resaved")  # an old folder re-saved gets the remote-code layout
    for path, name in REMOTE_CODE_FILES.items():
        assert (tmp_path / "resaved" / path).read_text() == remote_code.bundle_source(name), path


# 3. Loaded with Diffusers alone ------------------------------------------------------------------------------------


def test_folder_loads_with_diffusers_alone(saved_pipeline, sources, loaded_reference, tmp_path):
    report = _run_client(str(saved_pipeline), sources, tmp_path)
    _check_remote_load(report, saved_pipeline, loaded_reference)
    # What the remote-code pipeline re-saved loads back with the package, to the same output.
    np.testing.assert_array_equal(_loaded_output(report["work"] / "resaved", sources), loaded_reference)


def test_hub_id_loads_with_diffusers_alone(saved_pipeline, sources, loaded_reference, tmp_path):
    with hub_server.serve({"fsdiff-tiny": saved_pipeline}, tmp_path / "olah") as server:
        repo_id = f"{hub_server.OLAH_ORG}/fsdiff-tiny"
        report = _run_client(repo_id, sources, tmp_path, server.endpoint, revision="main")
        log = server.log.read_text()
    _check_remote_load(report, saved_pipeline, loaded_reference)
    assert "The repository for" in report["refusal"]["message"]  # the Hub wording of Diffusers' refusal
    for path in REMOTE_CODE_FILES:
        assert f"/{hub_server.OLAH_ORG}/fsdiff-tiny/resolve/" in log and path in log, path


def test_shipped_model_resaved_loads_with_diffusers_alone(sources, tmp_path):
    """A shipped folder (saved before the remote-code layout) re-saved as `export_checkpoint.py` will."""
    folder = tmp_path / "fsdiff-ir-vis"
    FSDiffPipeline.from_pretrained("fsdiff-ir-vis").save_pretrained(folder)
    reference = _loaded_output(folder, sources)
    report = _run_client(str(folder), sources, tmp_path)
    _check_remote_load(report, folder, reference)
