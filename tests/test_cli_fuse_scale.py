"""`fsdiff fuse` at scale: `--batch-size`, several processes (`torchrun`, two CPU processes) and `datasets` datasets,
on a tiny saved pipeline. Each process fuses its share; the results are byte for byte those of one process."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from fsdiff_diffusers import FSDiffPipeline
from fsdiff_diffusers.cli import main
from fsdiff_diffusers.cli.batches import Processes
from fsdiff_diffusers.example_pair import example_pair

STEMS = ("a", "b", "c", "d", "e")
TWO_PROCESSES = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """Five 32x24 pairs as `ir/<stem>.png` + `vi/<stem>.png`."""
    root = tmp_path_factory.mktemp("pairs")
    for seed, stem in enumerate(STEMS):
        write_pair(root, stem, (32, 24), seed)
    return root


@pytest.fixture(scope="module")
def reference(model, pairs, tmp_path_factory) -> dict[str, bytes]:
    """The bytes of each output of one process, one pair at a time, on one thread (as each launched process)."""
    out = tmp_path_factory.mktemp("reference")
    with one_thread():
        assert fuse(model, *folders(pairs), "-o", out) == 0
    return read_outputs(out)


def write_pair(root: Path, stem: str, size: tuple[int, int], seed: int, grey_visible: bool = False) -> None:
    infrared, visible = example_pair(*size, seed=seed)
    for folder, image in (("ir", infrared), ("vi", visible.convert("L") if grey_visible else visible)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        image.save(root / folder / f"{stem}.png")


def folders(root: Path) -> tuple:
    return "--infrared", root / "ir", "--visible", root / "vi"


def fuse(model: Path, *args) -> int:
    return main(["fuse", "--model", str(model), "--steps", "1", "--scale", "2", *map(str, args)])


def read_outputs(folder: Path) -> dict[str, bytes]:
    return {path.stem: path.read_bytes() for path in sorted(folder.iterdir())}


def launch_two(model: Path, *args) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 -m fsdiff_diffusers fuse ...`: two CPU processes of one thread each."""
    command = [*TWO_PROCESSES, "-m", "fsdiff_diffusers", "fuse", "--model", model, "--steps", "1", "--scale", 2, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env, timeout=300)


def in_memory(path: Path) -> PIL.Image.Image:
    """The image of `path`, detached from its file (a `datasets` dataset stores it as PNG bytes, not as the path)."""
    with PIL.Image.open(path) as image:
        return image.copy()


def written(stdout: str) -> Counter:
    """How many times each stem was written, from the `<stem> -> <path>` lines of every process."""
    return Counter(re.findall(r"^(\S+) -> ", stdout, re.MULTILINE))


class one_thread:
    """One intra-op thread, as `OMP_NUM_THREADS=1` gives each launched process (results depend on the threads)."""

    def __enter__(self):
        import torch

        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.threads)


# ----------------------------------------------------------------------------- batches
def test_batches_of_one_size_equal_single_runs_up_to_rounding(model, tmp_path, capsys, monkeypatch):
    """Mixed sizes and a grey visible image in one folder, --batch-size 3: pairs of one size go together (a, b, e and
    c, f), a pair that fails to load (d) fails alone, and every result is the one-at-a-time one up to rounding."""
    for seed, (stem, size) in enumerate(zip("abcdef", [(32, 24), (32, 24), (40, 30), (32, 24), (32, 24), (40, 30)])):
        write_pair(tmp_path, stem, size, seed, grey_visible=stem == "b")
    (tmp_path / "vi" / "d.png").write_bytes(b"not a PNG")
    batches = []
    pipeline_call = FSDiffPipeline.__call__

    def recording_call(pipe, *args, **kwargs):
        batches.append(len(kwargs["infrared"]))
        return pipeline_call(pipe, *args, **kwargs)

    monkeypatch.setattr(FSDiffPipeline, "__call__", recording_call)
    assert fuse(model, *folders(tmp_path), "-o", tmp_path / "one") == 1
    assert batches == [1] * 5
    batches.clear()
    capsys.readouterr()
    assert fuse(model, *folders(tmp_path), "-o", tmp_path / "three", "--batch-size", "3") == 1
    assert batches == [3, 2]
    stdout, stderr = capsys.readouterr()
    assert "error: d: Cannot read visible image" in stderr and "1 of 6 pairs failed: d" in stderr
    assert "fused 5 of 6 pairs into" in stdout
    names = sorted(path.name for path in (tmp_path / "three").iterdir())
    assert names == sorted(path.name for path in (tmp_path / "one").iterdir()) == [f"{s}.png" for s in "abcef"]
    for name in names:
        with PIL.Image.open(tmp_path / "one" / name) as single, PIL.Image.open(tmp_path / "three" / name) as batched:
            assert batched.mode == single.mode == ("L" if name == "b.png" else "RGB")
            difference = np.abs(np.asarray(batched, dtype=int) - np.asarray(single, dtype=int))
            assert difference.max() <= 1 and (difference > 0).mean() < 0.01  # float rounding, a few values


def test_a_failed_batch_fails_each_of_its_pairs(model, pairs, tmp_path, capsys, monkeypatch):
    def out_of_memory(pipe, *args, **kwargs):
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(FSDiffPipeline, "__call__", out_of_memory)
    assert fuse(model, *folders(pairs), "-o", tmp_path / "out", "--batch-size", "4") == 1
    stderr = capsys.readouterr().err
    for stem in STEMS:
        assert f"error: {stem}: out of memory on cpu; fuse it smaller (--scale, --size" in stderr
    assert "--batch-size) or on the cpu" in stderr  # the batch of four; e alone is told --scale, --size only
    assert list((tmp_path / "out").iterdir()) == []


# ----------------------------------------------------------------------------- several processes
def test_processes_share_the_pairs_and_devices():
    assert Processes.from_environment({}) == Processes(0, 1, 0)
    processes = Processes.from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (processes.label, processes.share(range(10))) == ("[rank 3/4] ", [3, 7])
    shares = [Processes(rank, 3).share(list(range(8))) for rank in range(3)]
    assert sorted(sum(shares, [])) == list(range(8))
    assert Processes(0, 1).device("auto") == "auto" and Processes(1, 2).device("cpu") == "cpu"
    with pytest.raises(ValueError, match="RANK=2 of WORLD_SIZE=2"):
        Processes.from_environment({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        Processes.from_environment({"WORLD_SIZE": "two"})


def test_two_processes_resume_and_equal_one_process_byte_for_byte(model, pairs, reference, tmp_path, monkeypatch):
    """Process 0 of 2 runs alone first (its partner was interrupted); the two-process launch then skips its pairs and
    fuses the others, each exactly once, into the bytes of a one-process run."""
    out = tmp_path / "out"
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with one_thread():
        assert fuse(model, *folders(pairs), "-o", out) == 0
    assert sorted(path.stem for path in out.iterdir()) == ["a", "c", "e"]
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")

    result = launch_two(model, *folders(pairs), "-o", out)
    assert result.returncode == 0, result.stderr
    assert written(result.stdout) == {"b": 1, "d": 1}
    assert "[rank 0/2] " not in result.stdout and "[rank 1/2] fused 2 of 2 pairs into" in result.stdout
    assert all(f"skipped {stem}: " in result.stderr for stem in "ace")
    assert read_outputs(out) == reference


def test_dataset_in_one_and_two_processes_equals_the_folders(model, pairs, reference, tmp_path, capsys):
    """A save_to_disk dataset of the same pairs (Image columns, a name column): one file per row, the folders' bytes,
    in one process and in two; rows are named by their index without --name_column."""
    datasets = pytest.importorskip("datasets", reason="datasets comes with the train extra")
    rows = {column: [in_memory(pairs / column / f"{stem}.png") for stem in STEMS] for column in ("ir", "vi")}
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({**rows, "name": list(STEMS)}).save_to_disk(saved)  # the images as PNG bytes
    columns = ("--dataset_path", saved, "--infrared_column", "ir", "--visible_column", "vi")

    with one_thread():
        assert fuse(model, *columns, "--name_column", "name", "-o", tmp_path / "one") == 0
        assert fuse(model, *columns, "-o", tmp_path / "by_row", "--batch-size", "2") == 0
    assert read_outputs(tmp_path / "one") == reference
    assert sorted(read_outputs(tmp_path / "by_row")) == ["00000", "00001", "00002", "00003", "00004"]

    result = launch_two(model, *columns, "--name_column", "name", "-o", tmp_path / "two")
    assert result.returncode == 0, result.stderr
    assert written(result.stdout) == dict.fromkeys(STEMS, 1)
    assert read_outputs(tmp_path / "two") == reference


def test_imagefolder_dataset_reads_its_files(model, pairs, reference, tmp_path):
    """--dataset_name FOLDER: an imagefolder whose metadata.jsonl names the infrared and visible files of each row."""
    pytest.importorskip("datasets", reason="datasets comes with the train extra")
    folder = tmp_path / "imagefolder"
    shutil.copytree(pairs, folder)
    rows = [{"infrared_file_name": f"ir/{s}.png", "visible_file_name": f"vi/{s}.png", "name": s} for s in STEMS]
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    with one_thread():
        assert fuse(model, "--dataset_name", folder, "--name_column", "name", "-o", tmp_path / "out") == 0
        assert fuse(model, "--dataset_name", folder, "--name_column", "name", "-o", folder / "ir") == 2
    assert read_outputs(tmp_path / "out") == reference


def test_dataset_errors(model, pairs, tmp_path, capsys):
    datasets = pytest.importorskip("datasets", reason="datasets comes with the train extra")
    infrared, visible = example_pair(32, 24)
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"ir": [infrared] * 2, "vi": [visible] * 2, "name": ["x", "x"]}).save_to_disk(saved)
    columns = ("--infrared_column", "ir", "--visible_column", "vi")
    cases = [
        (("--dataset_path", saved, "--infrared", pairs / "ir"), "not both"),
        (("--infrared", pairs / "ir"), "--visible missing"),
        (("--dataset_path", saved), r"Columns \['infrared', 'visible'\] are not in the dataset"),
        (("--dataset_path", saved, *columns, "--name_column", "name"), "holds the same name in several rows"),
        (("--dataset_path", saved, *columns, "-o", saved / "out"), "is inside the dataset folder"),
        (("--dataset_name", saved), "was written by save_to_disk"),
        (("--dataset_path", tmp_path / "nowhere"), "is not a folder; give one written by save_to_disk"),
    ]
    for args, message in cases:
        out = () if "-o" in args else ("-o", tmp_path / "out")
        assert fuse(model, *args, *out) == 2
        assert re.search(message, capsys.readouterr().err), message
    assert not (tmp_path / "out").exists() and not (saved / "out").exists()


def test_python_m_runs_fsdiff():
    result = subprocess.run([sys.executable, "-m", "fsdiff_diffusers", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: fsdiff" in result.stdout and "fuse" in result.stdout
