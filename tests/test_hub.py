"""Hub round trips of `FSDiffPipeline`: offline HF cache, a loopback Hub server (both folder layouts, and only the
files a load reads), `push_to_hub`, bad ids.

The loopback-server test needs `olah` (a Hub mirror server) in its own virtual environment, found through the
`FSDIFF_OLAH_CLI` environment variable (see `tests/hub_server.py`):

    python -m venv .ci/olah-venv && .ci/olah-venv/bin/pip install -r .ci/olah_requirements.txt
    FSDIFF_OLAH_CLI=.ci/olah-venv/bin/olah-cli python -m pytest tests/test_hub.py
"""

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import diffusers.utils.hub_utils
import huggingface_hub.constants
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from fsdiff_diffusers import FSDiffPipeline
from fsdiff_diffusers.pipelines import hub as pipeline_hub
from fsdiff_diffusers.pipelines.hub_download import pipeline_files

from . import hub_server
from .conftest import random_sources, two_step_fusion
from .conftest import tiny_pipeline as make_tiny_pipeline

REPO_ID = "fsdiff-org/fsdiff-tiny"
COMPONENT_FILES = (
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "clarity_encoder/config.json",
    "clarity_encoder/diffusion_pytorch_model.safetensors",
    "scheduler/scheduler_config.json",
)
REMOTE_CODE_FILES = ("pipeline_fsdiff.py", "unet/unet_fsdiff.py", "clarity_encoder/clarity_mamba.py")


@pytest.fixture(scope="module")
def sources() -> tuple[np.ndarray, np.ndarray]:
    return random_sources(0)


@pytest.fixture(scope="module")
def tiny_pipeline() -> FSDiffPipeline:
    return make_tiny_pipeline()


@pytest.fixture(scope="module")
def reference_output(tiny_pipeline, sources) -> np.ndarray:
    return two_step_fusion(tiny_pipeline, *sources)


@pytest.fixture(scope="module")
def saved_pipeline(tiny_pipeline, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "fsdiff-tiny"
    tiny_pipeline.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def loaded_reference(saved_pipeline, sources, reference_output) -> np.ndarray:
    """The output of the pipeline loaded back from its local folder: the bitwise reference for every loaded copy.

    Loaded weights equal the original's exactly, but safetensors hands them out memory-mapped at offsets that are not
    64-byte aligned, and the CPU kernels then take paths that differ from the original's in the last bit (up to ~1e-6
    here; cloning the loaded parameters makes the outputs bitwise equal again). Loaded copies are therefore compared
    bitwise with this, and with the in-memory original to float32 rounding amplified by the sampler (1e-4, as in
    diffusers' tests).
    """
    pipe = FSDiffPipeline.from_pretrained(saved_pipeline)
    pipe.set_progress_bar_config(disable=True)
    output = two_step_fusion(pipe, *sources)
    np.testing.assert_allclose(output, reference_output, rtol=0, atol=1e-4)
    return output


def _assert_same_weights(pipe: FSDiffPipeline, original: FSDiffPipeline) -> None:
    for name in ("unet", "clarity_encoder"):
        loaded, expected = getattr(pipe, name).state_dict(), getattr(original, name).state_dict()
        assert loaded.keys() == expected.keys(), name
        for key, tensor in expected.items():
            assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor), f"{name}.{key}"
    assert type(pipe.scheduler) is type(original.scheduler)
    assert {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")} == {
        k: v for k, v in original.scheduler.config.items() if not k.startswith("_")
    }


@pytest.fixture
def hub_offline(monkeypatch) -> list:
    """`HF_HUB_OFFLINE=1` as huggingface_hub and diffusers see it, and a socket guard recording any network attempt.

    huggingface_hub reads `HF_HUB_OFFLINE` once, into `huggingface_hub.constants.HF_HUB_OFFLINE`, when it is imported
    (`constants.is_offline_mode()` reads that constant), and diffusers copies it at import into its own modules: setting
    the environment variable inside a test is not enough, the constants are patched too.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(diffusers.utils.hub_utils, "HF_HUB_OFFLINE", True)
    attempts = []
    connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"test_hub: network access to {address} attempted while offline")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts


def _write_hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Lay `folder` out as huggingface_hub caches a download of `repo_id` at `main`; return the snapshot folder."""
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo_folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_folder / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(commit)
    return snapshot


# 1. Hub id, offline, from the HF cache ----------------------------------------------------------------------------


@pytest.mark.parametrize("cache_from", ["cache_dir argument", "HF_HUB_CACHE"])
def test_from_pretrained_hub_id_from_offline_cache(
    cache_from, tiny_pipeline, saved_pipeline, sources, loaded_reference, hub_offline, tmp_path, monkeypatch
):
    cache = tmp_path / "hub-cache"
    snapshot = _write_hub_cache(cache, REPO_ID, saved_pipeline)
    kwargs = {}
    if cache_from == "HF_HUB_CACHE":
        # Read once at import into `huggingface_hub.constants.HF_HUB_CACHE`; snapshot_download reads the constant.
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    else:
        kwargs["cache_dir"] = cache

    pipe = FSDiffPipeline.from_pretrained(REPO_ID, **kwargs)

    assert isinstance(pipe, FSDiffPipeline)
    assert Path(pipe.name_or_path).resolve() == snapshot.resolve()
    _assert_same_weights(pipe, tiny_pipeline)
    pipe.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(two_step_fusion(pipe, *sources), loaded_reference)
    assert hub_offline == [], "the offline load tried to reach the network"


# 2. Hub id, online, through a loopback Hub server (olah) --------------------------------------------------------

# Runs in a fresh interpreter, so that huggingface_hub reads HF_ENDPOINT at import like it does for users.
LOAD_THROUGH_SERVER = r"""
import json, sys
from pathlib import Path
import numpy as np, torch
from diffusers import DiffusionPipeline
from fsdiff_diffusers import FSDiffPipeline

org, work = sys.argv[1], Path(sys.argv[2])
report = {"loads": {}}

def error_of(load):
    try:
        load()
    except Exception as error:
        return {"type": type(error).__name__, "message": str(error)}
    return None

# Diffusers' own loading, as `FSDiffPipeline` would load without its override.
stock = DiffusionPipeline.from_pretrained.__func__
for layout in ("old", "new"):
    repo_id = f"{org}/fsdiff-tiny" + ("-old" if layout == "old" else "")
    report[f"stock_{layout}"] = error_of(
        lambda: stock(FSDiffPipeline, repo_id, revision="main", cache_dir=work / f"cache-stock-{layout}")
    )
report["absent"] = error_of(
    lambda: FSDiffPipeline.from_pretrained(f"{org}/fsdiff-absent", revision="main", cache_dir=work / "cache-absent")
)

pipes = {}
loads = {
    "new": ("fsdiff-tiny", {}),
    "old": ("fsdiff-tiny-old", {}),
    "variants_fp16": ("fsdiff-tiny-variants", {"variant": "fp16"}),
    "variants_default": ("fsdiff-tiny-variants", {}),
    "variants_unet_passed": ("fsdiff-tiny-variants", {"unet": "from new"}),
}
for key, (name, kwargs) in loads.items():
    if kwargs.get("unet") == "from new":
        kwargs = {**kwargs, "unet": pipes["new"].unet}
    pipe = FSDiffPipeline.from_pretrained(f"{org}/{name}", revision="main", cache_dir=work / f"cache-{key}", **kwargs)
    pipe.set_progress_bar_config(disable=True)
    pipes[key] = pipe
    snapshot = Path(pipe.name_or_path)
    files = sorted(str(path.relative_to(snapshot)) for path in snapshot.rglob("*") if path.is_file())
    report["loads"][key] = {
        "name_or_path": str(snapshot),
        "files": files,
        "classes": [type(pipe).__module__, type(pipe.unet).__module__, type(pipe.clarity_encoder).__module__],
    }
    images = pipe(
        infrared=np.load(work / "infrared.npy"),
        visible=np.load(work / "visible.npy"),
        scale=2,
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    np.save(work / f"fused-{key}.npy", images)
(work / "report.json").write_text(json.dumps(report))
"""

WEIGHTS = "diffusion_pytorch_model{}.safetensors"


@pytest.fixture
def variants_folder(tiny_pipeline, tmp_path) -> Path:
    """A repository with more than a load needs: default and fp16 weights, pickled weights beside the safetensors,
    the remote-code modules, a card and an unrelated folder."""
    folder = tmp_path / "variants"
    tiny_pipeline.save_pretrained(folder)
    tiny_pipeline.save_pretrained(folder, variant="fp16")
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not read: the safetensors are")
    (folder / "unused").mkdir()
    (folder / "unused" / WEIGHTS.format("")).write_bytes(b"not a component of model_index.json")
    tiny_pipeline.model_card("fsdiff-org/fsdiff-tiny-variants").save(folder / "README.md")
    return folder


@pytest.fixture
def olah_server(saved_pipeline, variants_folder, tmp_path):
    """Serve the tiny pipeline on loopback as `OLAH_ORG/fsdiff-tiny` (remote-code layout), `fsdiff-tiny-old` (the
    layout saved before it) and `fsdiff-tiny-variants` (see `variants_folder`)."""
    old = hub_server.to_old_layout(Path(shutil.copytree(saved_pipeline, tmp_path / "old")))
    repos = {"fsdiff-tiny": saved_pipeline, "fsdiff-tiny-old": old, "fsdiff-tiny-variants": variants_folder}
    with hub_server.serve(repos, tmp_path / "olah") as server:
        yield server


def _component_files(variant: str = "", components=("clarity_encoder", "unet")) -> list[str]:
    files = ["model_index.json", "scheduler/scheduler_config.json"]
    for component in components:
        files += [f"{component}/config.json", f"{component}/{WEIGHTS.format(variant)}"]
    return sorted(files)


def test_from_pretrained_hub_id_through_loopback_server(
    olah_server, saved_pipeline, sources, loaded_reference, tmp_path
):
    work = tmp_path / "client"
    work.mkdir()
    np.save(work / "infrared.npy", sources[0])
    np.save(work / "visible.npy", sources[1])
    result = subprocess.run(
        [sys.executable, "-c", LOAD_THROUGH_SERVER, hub_server.OLAH_ORG, str(work)],
        env=hub_server.client_env(tmp_path, olah_server.endpoint),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"client failed:\n{result.stderr[-4000:]}\nolah log:\n{olah_server.log.read_text()[-2000:]}"
    )
    report = json.loads((work / "report.json").read_text())

    # (a) Why `FSDiffPipeline.from_pretrained` downloads on its own (diffusers 0.42.1): Diffusers' download step
    # rejects the package's module names of folders saved before the remote-code layout, and runs the saved pipeline
    # module of the remote-code layout, which it refuses without trust_remote_code=True.
    assert report["stock_old"] is not None, "stock Diffusers loaded a Hub id naming fsdiff_diffusers' modules"
    assert report["stock_old"]["type"] == "ValueError"
    assert "as defined in `model_index.json` does not exist" in report["stock_old"]["message"]
    assert report["stock_new"] is not None, "stock Diffusers loaded a remote-code Hub id without trust_remote_code"
    assert report["stock_new"]["type"] == "ValueError"
    assert "trust_remote_code=True" in report["stock_new"]["message"]

    # An id the server does not have fails with an error naming it (huggingface_hub's RepositoryNotFoundError).
    assert report["absent"] is not None
    assert f"{hub_server.OLAH_ORG}/fsdiff-absent" in report["absent"]["message"]

    # (b) Both layouts load through the server into the given cache with this package's classes, identical weights
    # and outputs, fetching the configurations and weights only (not the remote-code modules).
    loads = report["loads"]
    for key in ("new", "old"):
        snapshot = Path(loads[key]["name_or_path"])
        assert snapshot.is_relative_to(work / f"cache-{key}"), snapshot
        suffix = "" if key == "new" else "-old"
        assert snapshot.parent.parent.name == f"models--{hub_server.OLAH_ORG}--fsdiff-tiny{suffix}"
        assert loads[key]["files"] == _component_files(), key
        for name in COMPONENT_FILES[1:]:
            assert (snapshot / name).read_bytes() == (saved_pipeline / name).read_bytes(), name
        assert all(module.startswith("fsdiff_diffusers.") for module in loads[key]["classes"]), loads[key]
        np.testing.assert_array_equal(np.load(work / f"fused-{key}.npy"), loaded_reference)
    assert f"/{hub_server.OLAH_ORG}/fsdiff-tiny/resolve/" in olah_server.log.read_text()

    # (c) Only what the load reads: the requested variant, not the other one, the pickled copy, the modules or the
    # unrelated folder; no files of a component passed as an argument. The card comes along (push_to_hub reuses it).
    assert loads["variants_fp16"]["files"] == sorted(["README.md", *_component_files(".fp16")])
    assert loads["variants_default"]["files"] == sorted(["README.md", *_component_files()])
    assert loads["variants_unet_passed"]["files"] == sorted(
        ["README.md", *_component_files(components=("clarity_encoder",))]
    )
    for key in ("variants_fp16", "variants_default", "variants_unet_passed"):
        np.testing.assert_array_equal(np.load(work / f"fused-{key}.npy"), loaded_reference)


def test_pipeline_files_pick_one_format_and_variant_per_component():
    index = {
        "_class_name": ["pipeline_fsdiff", "FSDiffPipeline"],
        "_diffusers_version": "0.42.1",
        "unet": ["unet_fsdiff", "FSDiffUNet2DModel"],
        "clarity_encoder": ["clarity_mamba", "ClarityMambaEncoder"],
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
        "semantic_encoder": [None, None],
        "feature_extractor": [None, None],
        "default_num_inference_steps": 10,
    }
    sharded = [f"unet/diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    sharded_fp16 = [f"unet/diffusion_pytorch_model.fp16-0000{i}-of-00002.safetensors" for i in (1, 2)]
    files = [
        ".gitattributes",
        "README.md",
        "model_index.json",
        "pipeline_fsdiff.py",
        "unet/config.json",
        "unet/unet_fsdiff.py",
        "unet/diffusion_pytorch_model.safetensors.index.json",
        *sharded,
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
        *sharded_fp16,
        "unet/diffusion_pytorch_model.bin",
        "clarity_encoder/config.json",
        "clarity_encoder/clarity_mamba.py",
        "clarity_encoder/diffusion_pytorch_model.safetensors",
        "clarity_encoder/diffusion_pytorch_model.bin",
        "scheduler/scheduler_config.json",
        "semantic_encoder/model.safetensors",
        "unet_ema/config.json",
        "unet_ema/diffusion_pytorch_model.safetensors",
        "images/fused.png",
    ]
    common = ["README.md", "model_index.json", "scheduler/scheduler_config.json"]

    assert sorted(pipeline_files(files, index)) == sorted(
        [
            *common,
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors.index.json",
            *sharded,
            "clarity_encoder/config.json",
            "clarity_encoder/diffusion_pytorch_model.safetensors",
        ]
    )
    # fp16 where a component has it, its default weights where it does not (as Diffusers falls back).
    assert sorted(pipeline_files(files, index, variant="fp16")) == sorted(
        [
            *common,
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
            *sharded_fp16,
            "clarity_encoder/config.json",
            "clarity_encoder/diffusion_pytorch_model.safetensors",
        ]
    )
    assert sorted(pipeline_files(files, index, use_safetensors=False, skip={"unet"})) == sorted(
        [*common, "clarity_encoder/config.json", "clarity_encoder/diffusion_pytorch_model.bin"]
    )


# 3. push_to_hub -------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch, tmp_path) -> SimpleNamespace:
    """Replace `create_repo` / `upload_folder` where `fsdiff_diffusers.pipelines.hub` looks them up; keep copies of
    each upload."""
    hub = SimpleNamespace(created=[], uploads=[])

    def create_repo(repo_id, **kwargs):
        hub.created.append({"repo_id": repo_id, **kwargs})
        # The real one answers with the full id, adding the user's namespace to a bare name.
        return SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"fake-user/{repo_id}")

    def upload_folder(*, repo_id, folder_path, **kwargs):
        copy = tmp_path / f"upload-{len(hub.uploads)}"
        shutil.copytree(folder_path, copy)  # the pipeline deletes its temporary folder afterwards
        hub.uploads.append({"repo_id": repo_id, "folder": copy, **kwargs})
        return f"https://hub.invalid/{repo_id}/commit/{len(hub.uploads)}"

    monkeypatch.setattr(pipeline_hub, "create_repo", create_repo)
    monkeypatch.setattr(pipeline_hub, "upload_folder", upload_folder)
    return hub


def test_push_to_hub_uploads_pipeline_and_model_card(fake_hub, tiny_pipeline, sources, loaded_reference):
    url = tiny_pipeline.push_to_hub("fsdiff-tiny", private=True, token="hf_fake")

    assert url == "https://hub.invalid/fake-user/fsdiff-tiny/commit/1"
    assert fake_hub.created == [{"repo_id": "fsdiff-tiny", "private": True, "token": "hf_fake", "exist_ok": True}]
    (upload,) = fake_hub.uploads
    assert upload["repo_id"] == "fake-user/fsdiff-tiny"
    assert upload["token"] == "hf_fake"
    assert upload["commit_message"] == "Upload FSDiffPipeline"
    assert upload["create_pr"] is False

    folder = upload["folder"]
    for name in ("README.md", *COMPONENT_FILES, *REMOTE_CODE_FILES):
        assert (folder / name).is_file(), name
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_fsdiff", "FSDiffPipeline"]  # the remote-code layout

    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\n")
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "diffusers"
    assert {"fsdiff", "image-fusion", "super-resolution"} <= set(card.data.tags)
    assert "fake-user/fsdiff-tiny" in card.text
    assert 'FSDiffPipeline.from_pretrained("fake-user/fsdiff-tiny")' in card.text
    assert 'DiffusionPipeline.from_pretrained("fake-user/fsdiff-tiny", trust_remote_code=True)' in card.text

    # What was uploaded loads back (README.md at the root does not get in the way) and samples the same.
    reloaded = FSDiffPipeline.from_pretrained(folder)
    _assert_same_weights(reloaded, tiny_pipeline)
    reloaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(two_step_fusion(reloaded, *sources), loaded_reference)


def test_push_to_hub_variant_writes_variant_weights(fake_hub, tiny_pipeline, sources, loaded_reference):
    tiny_pipeline.push_to_hub(REPO_ID, variant="fp16", commit_message="fp16 weights", create_pr=True)

    (upload,) = fake_hub.uploads
    assert upload["repo_id"] == REPO_ID
    assert upload["commit_message"] == "fp16 weights"
    assert upload["create_pr"] is True
    folder = upload["folder"]
    assert (folder / "README.md").is_file()
    assert (folder / "model_index.json").is_file()
    for component in ("unet", "clarity_encoder"):
        assert (folder / component / "config.json").is_file()
        assert sorted(p.name for p in (folder / component).glob("*.safetensors")) == [
            "diffusion_pytorch_model.fp16.safetensors"
        ]
    assert (folder / "scheduler" / "scheduler_config.json").is_file()

    reloaded = FSDiffPipeline.from_pretrained(folder, variant="fp16")
    _assert_same_weights(reloaded, tiny_pipeline)
    reloaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(two_step_fusion(reloaded, *sources), loaded_reference)


# 4. Bad folders and ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["/no/such/dir", "not a valid id!!", "./no_such_folder"])
def test_from_pretrained_rejects_missing_folder_or_invalid_id(name, hub_offline):
    with pytest.raises(ValueError, match="neither a folder nor a valid Hub repository id") as raised:
        FSDiffPipeline.from_pretrained(name)
    assert repr(name) in str(raised.value)
    assert hub_offline == []


def test_from_pretrained_folder_without_model_index(tmp_path, hub_offline):
    with pytest.raises(OSError, match="model_index.json"):
        FSDiffPipeline.from_pretrained(tmp_path)
    assert hub_offline == []


def test_from_pretrained_absent_hub_id_offline_fails_without_network(tmp_path, hub_offline):
    with pytest.raises((OSError, ValueError)):
        FSDiffPipeline.from_pretrained("fsdiff-org/no-such-model", cache_dir=tmp_path)
    assert hub_offline == []


def test_from_pretrained_absent_hub_id_offline_error_names_it(tmp_path, hub_offline):
    with pytest.raises((OSError, ValueError), match="fsdiff-org/no-such-model"):
        FSDiffPipeline.from_pretrained("fsdiff-org/no-such-model", cache_dir=tmp_path)


def test_push_to_hub_keeps_the_card_saved_with_the_model(fake_hub, tiny_pipeline, tmp_path):
    saved = tmp_path / "trained"
    tiny_pipeline.save_pretrained(saved)
    card = tiny_pipeline.model_card("me/trained", evaluation="| metric | value |\n|---|---|\n| SSIM | 0.5 |")
    card.save(saved / "README.md")

    FSDiffPipeline.from_pretrained(saved).push_to_hub("me/trained")
    tiny_pipeline.push_to_hub("me/fresh")
    replaced = ModelCard(card.content.replace("me/trained", "me/other"))
    FSDiffPipeline.from_pretrained(saved).push_to_hub("me/other", model_card=replaced)

    kept, fresh, given = (upload["folder"] / "README.md" for upload in fake_hub.uploads)
    assert kept.read_text() == (saved / "README.md").read_text()
    assert "| SSIM | 0.5 |" in kept.read_text()
    assert "| SSIM | 0.5 |" not in fresh.read_text() and "me/fresh" in fresh.read_text()
    assert "me/other" in given.read_text() and "me/trained" not in given.read_text()


def test_save_pretrained_with_push_to_hub_saves_and_uploads_the_remote_code_layout(fake_hub, tiny_pipeline, tmp_path):
    saved = tmp_path / "saved"
    tiny_pipeline.save_pretrained(saved, push_to_hub=True, repo_id="me/saved", private=True, commit_message="first")

    assert fake_hub.created == [{"repo_id": "me/saved", "private": True, "token": None, "exist_ok": True}]
    (upload,) = fake_hub.uploads
    assert upload["repo_id"] == "me/saved" and upload["commit_message"] == "first"
    for name in (*COMPONENT_FILES, *REMOTE_CODE_FILES):
        assert (saved / name).is_file(), name
        assert (upload["folder"] / name).read_bytes() == (saved / name).read_bytes(), name
    assert "trust_remote_code=True" in (upload["folder"] / "README.md").read_text()
