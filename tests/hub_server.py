"""A Hub server on loopback (olah) serving saved pipeline folders as Hub repositories, for the tests that load Hub ids
online (`test_hub.py`, `test_remote_code.py`); and helpers shared by those tests.

olah runs in its own virtual environment, found through the `FSDIFF_OLAH_CLI` environment variable (tests using it
skip without it):

    python -m venv .ci/olah-venv && .ci/olah-venv/bin/pip install -r .ci/olah_requirements.txt
    FSDIFF_OLAH_CLI=.ci/olah-venv/bin/olah-cli python -m pytest tests/test_hub.py tests/test_remote_code.py
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

OLAH_ORG = "fsdiff-org"

PACKAGE_MODULES = {
    "unet": "fsdiff_diffusers.models.unet_fsdiff",
    "clarity_encoder": "fsdiff_diffusers.models.clarity_mamba",
}
"""What a folder saved before the remote-code layout names in model_index.json, by component."""


def olah_cli() -> str:
    """The olah-cli of `FSDIFF_OLAH_CLI` (absolute); skips the test when it or git is missing."""
    path = os.environ.get("FSDIFF_OLAH_CLI")
    if not path:
        pytest.skip(
            "FSDIFF_OLAH_CLI is not set: it must name the olah-cli of a separate venv "
            "(python -m venv .ci/olah-venv && .ci/olah-venv/bin/pip install -r .ci/olah_requirements.txt)"
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"FSDIFF_OLAH_CLI={path!r} is not an executable file")
    if shutil.which("git") is None:
        pytest.skip("git is needed to build the mirror repositories olah serves")
    return os.path.abspath(path)  # olah runs from its own temporary folder


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=fsdiff-tests", "-c", "user.email=tests@fsdiff.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def serve(repos: Mapping[str, Path], server_dir: Path) -> Iterator[SimpleNamespace]:
    """
    Serve each folder of `repos` as the Hub model `OLAH_ORG/<name>` on loopback, from `server_dir`.

    Yields:
        `SimpleNamespace` with `endpoint` (for `HF_ENDPOINT`) and `log` (the server's log file).
    """
    cli = olah_cli()
    for name, folder in repos.items():
        repo = server_dir / "mirrors" / "models" / OLAH_ORG / name
        shutil.copytree(folder, repo)
        _git("init", "-q", "-b", "main", cwd=repo)
        _git("add", ".", cwd=repo)
        _git("commit", "-q", "-m", f"FS-Diff {name}", cwd=repo)

    port = _free_port()
    (server_dir / "olah.toml").write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'mirror-netloc = "127.0.0.1:{port}"\n'
        f'mirrors-path = ["{server_dir / "mirrors"}"]\n'
        f'repos-path = "{server_dir / "repos"}"\n'
        "\n[accessibility]\n"
        "offline = true\n"
    )
    log_path = server_dir / "olah.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [cli, "-c", "olah.toml"], cwd=server_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # olah 0.5.4 answers 401 on /api/models/ORG/NAME without a revision: probe the revision route.
        probe = f"{endpoint}/api/models/{OLAH_ORG}/{next(iter(repos))}/revision/main"
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                pytest.fail(f"olah exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(probe, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"olah did not serve {probe} within 30 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield SimpleNamespace(endpoint=endpoint, log=log_path)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def client_env(tmp_path: Path, endpoint: str | None = None) -> dict[str, str]:
    """The environment of a client subprocess: its own HF_HOME (Hub cache and Diffusers' remote-code modules), no token,
    online (through `endpoint` when given) and the parent's thread count (CPU kernels round differently with others)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        OMP_NUM_THREADS=str(torch.get_num_threads()),
    )
    if endpoint is not None:
        env["HF_ENDPOINT"] = endpoint
    return env


def to_old_layout(folder: Path) -> Path:
    """Turn a folder saved with remote code into the layout saved before it: no Python modules, and model_index.json
    naming the package's modules (as the shipped folders and repositories pushed earlier do). Returns `folder`."""
    for module in folder.rglob("*.py"):
        module.unlink()
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["_class_name"] = index["_class_name"][1]
    for name, module in PACKAGE_MODULES.items():
        index[name] = [module, index[name][1]]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return folder
