"""Bad input, table-driven: every case through the CLI (`fuse`, `baseline`, `evaluate`, `example`) or the Python API
must fail (or cope) with a message that names the problem, change no input file, and leave no half-written output.

Each case runs in a fresh workspace (`ws`): `ir/` + `vi/` folders with two good pairs (`a`, `b`), the single files
`ir.png` + `vi.png`, a `fused/` folder that scores against `ir/` + `vi/`, and a tiny saved model (`model`). A case's
arguments name them as `{ws}` and `{model}`; its `prepare` may add bad files first. The README's errors table lists
these cases.
"""

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from fsdiff_diffusers import FSDiffPipeline
from fsdiff_diffusers.cli import main
from fsdiff_diffusers.cli.outputs import PARTIAL_MARK
from fsdiff_diffusers.example_pair import example_pair


@dataclass(frozen=True)
class Case:
    """One bad input: `args` of `fsdiff` (CLI) or a call of `(pipe, ws)` (API), and what must come of it."""

    name: str
    args: tuple[str, ...] | Callable[[FSDiffPipeline, Path], object]
    expected: int | type[Exception]  # exit status, or the exception type of an API call
    message: str  # regular expression that the output (stderr + stdout, or the exception's text) must contain
    prepare: Callable[[Path], None] | None = None


def write_pair(folder: Path, stem: str, size: tuple[int, int] = (32, 24), seed: int = 0) -> None:
    infrared, visible = example_pair(*size, seed=seed)
    (folder / "ir").mkdir(parents=True, exist_ok=True)
    (folder / "vi").mkdir(parents=True, exist_ok=True)
    infrared.save(folder / "ir" / f"{stem}.png")
    visible.save(folder / "vi" / f"{stem}.png")


def truncated_png(path: Path) -> None:
    """What Ctrl-C during a save leaves: the first 33 bytes of a PNG (signature and header, no data)."""
    path.write_bytes(path.read_bytes()[:33] if path.exists() else b"\x89PNG\r\n\x1a\n" + bytes(25))


def broken_pair_b(ws: Path) -> None:
    (ws / "ir" / "b.png").write_bytes(b"not an image at all")


def mismatched_pair_b(ws: Path) -> None:
    example_pair(40, 30)[0].save(ws / "ir" / "b.png")


def small_triplets(ws: Path) -> None:
    for folder in ("small_fused", "small_ir", "small_vi"):
        (ws / folder).mkdir()
        PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 30), dtype=np.uint8)).save(
            ws / folder / "s.png"
        )


def run_fuse_first(ws: Path) -> None:
    """An earlier complete output of pair a, to be skipped; and a truncated one of pair b, to be redone."""
    (ws / "out").mkdir()
    PIL.Image.new("L", (64, 48)).save(ws / "out" / "a.png")
    truncated_png(ws / "out" / "b.png")


FUSE = ("fuse", "--model", "{model}", "--steps", "1")
PAIR = ("--infrared", "{ws}/ir.png", "--visible", "{ws}/vi.png")
FOLDERS = ("--infrared", "{ws}/ir", "--visible", "{ws}/vi")
EVALUATE = ("evaluate", "--fused", "{ws}/fused", "--infrared", "{ws}/ir", "--visible", "{ws}/vi", "--metrics", "EN")
BASELINE = ("baseline", "--method", "max", *FOLDERS)

CLI_CASES = [
    # fsdiff fuse: outputs that would destroy inputs, whatever the flags
    Case("fuse -o is the visible file", (*FUSE, *PAIR, "-o", "{ws}/vi.png", "--overwrite"), 2, "is the input file"),
    Case("fuse -o is the infrared file", (*FUSE, *PAIR, "-o", "{ws}/ir.png"), 2, "is the input file"),
    Case("fuse -o is the visible folder", (*FUSE, *FOLDERS, "-o", "{ws}/vi", "--overwrite"), 2, "is the input folder"),
    Case("fuse -o holds the inputs", (*FUSE, *FOLDERS, "-o", "{ws}"), 2, "holds the input"),
    Case(
        "fuse -o is a link to an input",
        (*FUSE, *PAIR, "-o", "{ws}/link.png", "--overwrite"),
        2,
        "is the input file",
        prepare=lambda ws: (ws / "link.png").symlink_to(ws / "vi.png"),
    ),
    Case(
        "fuse -o spelled with ..",
        (*FUSE, *PAIR, "-o", "{ws}/ir/../vi.png", "--overwrite"),
        2,
        "is the input file",
    ),
    # fsdiff fuse: output paths that cannot be written
    Case("fuse -o is a folder", (*FUSE, *PAIR, "-o", "{ws}/dir.png"), 2, "is a folder",
         lambda ws: (ws / "dir.png").mkdir()),  # fmt: skip
    Case("fuse -o under a file", (*FUSE, *PAIR, "-o", "{ws}/ir.png/out.png"), 2, "is a file, not a folder"),
    Case("fuse folders -o is an image name", (*FUSE, *FOLDERS, "-o", "{ws}/out.png"), 2, "must be a folder"),
    Case("fuse -o has an unknown extension", (*FUSE, *PAIR, "-o", "{ws}/out.bmp"), 2, "must be an image file ending"),
    # fsdiff fuse: inputs
    Case("fuse missing infrared", (*FUSE, "--infrared", "{ws}/no.png", "--visible", "{ws}/vi.png", "-o", "{ws}/o.png"),
         2, "infrared path .* does not exist"),  # fmt: skip
    Case("fuse file with folder", (*FUSE, "--infrared", "{ws}/ir.png", "--visible", "{ws}/vi", "-o", "{ws}/o.png"),
         2, "two image files or two folders"),  # fmt: skip
    Case("fuse a broken pair among good ones", (*FUSE, *FOLDERS, "-o", "{ws}/out"), 1, r"b: .*b\.png",
         broken_pair_b),  # fmt: skip
    Case("fuse a pair of two sizes", (*FUSE, *FOLDERS, "-o", "{ws}/out"), 1, "must have one size", mismatched_pair_b),
    Case("fuse a truncated infrared file", (*FUSE, *PAIR, "-o", "{ws}/o.png"), 1, r"ir\.png",
         lambda ws: truncated_png(ws / "ir.png")),  # fmt: skip
    Case("fuse redoes a half-written output, skips a complete one", (*FUSE, *FOLDERS, "-o", "{ws}/out"), 0,
         r"skipped a: .*\n(.|\n)*redoing b: .*not a complete image", run_fuse_first),  # fmt: skip
    # fsdiff fuse: options
    Case("fuse --scale below 1", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--scale", "0.5"), 2, "below 1"),
    Case("fuse --scale nan", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--scale", "nan"), 2, "not a finite number"),
    Case("fuse --size 0x10", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--size", "0x10"), 2, "not a size in pixels"),
    Case("fuse --steps 0", ("fuse", "--model", "{model}", "--steps", "0", *PAIR, "-o", "{ws}/o.png"), 2,
         "not a positive integer"),  # fmt: skip
    Case("fuse --tile-size 2", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--tile-size", "2"), 2,
         "`tile_size` must be an int of at least 4"),  # fmt: skip
    Case("fuse --input-range reversed", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--input-range", "5,1"), 2,
         "LOW < HIGH"),  # fmt: skip
    Case("fuse --input-range unknown", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--input-range", "kelvin"), 2,
         "not auto, full or LOW,HIGH"),  # fmt: skip
    Case("fuse --scale beyond x8 warns", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--scale", "9"), 0,
         "warning: Upscaling x9"),  # fmt: skip
    Case("fuse 12-bit infrared says its range", (*FUSE, "--infrared", "{ws}/ir12.png", "--visible", "{ws}/vi.png",
         "-o", "{ws}/o.png"), 0, r"ir12\.png: stored values [\d.]+\.\.[\d.]+ shown as black\.\.white",
         lambda ws: PIL.Image.fromarray(np.asarray(PIL.Image.open(ws / "ir.png").convert("L"), np.uint16) * 16).save(
             ws / "ir12.png")),  # fmt: skip
    Case("fuse --device tpu", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--device", "tpu"), 2, "is not a device"),
    Case("fuse --device cuda without one", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--device", "cuda:7"), 2,
         "CUDA" if not torch.cuda.is_available() else "only .* CUDA GPUs"),  # fmt: skip
    Case("fuse --scheduler unknown", (*FUSE, *PAIR, "-o", "{ws}/o.png", "--scheduler", "fastest"), 2,
         "unknown scheduler 'fastest'"),  # fmt: skip
    Case("fuse --model folder without a pipeline", ("fuse", "--model", "{ws}/ir", *PAIR, "-o", "{ws}/o.png"), 2,
         "holds no model_index.json"),  # fmt: skip
    # fsdiff baseline
    Case("baseline --out is the visible folder", (*BASELINE, "--out", "{ws}/vi"), 2, "is the input folder"),
    Case("baseline --out holds the inputs", (*BASELINE, "--out", "{ws}"), 2, "holds the input"),
    Case("baseline --out under a file", (*BASELINE, "--out", "{ws}/ir.png/out"), 2, "is a file, not a folder"),
    Case("baseline skips existing outputs", (*BASELINE, "--out", "{ws}/out"), 0, "skipped a: .* --overwrite",
         run_fuse_first),  # fmt: skip
    Case("baseline --method unknown", ("baseline", "--method", "best", *FOLDERS, "--out", "{ws}/o"), 2,
         "invalid choice: 'best'"),  # fmt: skip
    Case("baseline missing folder", ("baseline", "--method", "max", "--infrared", "{ws}/none", "--visible", "{ws}/vi",
         "--out", "{ws}/o"), 2, "none"),  # fmt: skip
    Case("baseline a broken pair among good ones", (*BASELINE, "--out", "{ws}/o"), 1, r"b: .*b\.png", broken_pair_b),
    Case("baseline --scale 0", (*BASELINE, "--out", "{ws}/o", "--scale", "0"), 2, "below 1"),
    # fsdiff evaluate
    Case("evaluate --csv is a folder", (*EVALUATE, "--csv", "{ws}/scores"), 2, "--csv .* is a folder",
         lambda ws: (ws / "scores").mkdir()),  # fmt: skip
    Case("evaluate --csv is an input folder", (*EVALUATE, "--csv", "{ws}/ir"), 2, "is the input folder"),
    Case("evaluate --csv under a file", (*EVALUATE, "--csv", "{ws}/ir.png/s.csv"), 2, "is a file, not a folder"),
    Case("evaluate --json is a folder", (*EVALUATE, "--json", "{ws}/scores"), 2, "--json .* is a folder",
         lambda ws: (ws / "scores").mkdir()),  # fmt: skip
    Case("evaluate --json into a missing folder", (*EVALUATE, "--json", "{ws}/new/dir/s.json"), 0, "mean over 2"),
    Case("evaluate --csv over an input image", (*EVALUATE, "--csv", "{ws}/fused/a.png"), 2,
         "is a file of the input folder"),  # fmt: skip
    Case("evaluate --metrics unknown", (*EVALUATE[:-2], "--metrics", "Qxyz"), 2, "unknown metric 'Qxyz'"),
    Case("evaluate missing fused folder", ("evaluate", "--fused", "{ws}/none", "--infrared", "{ws}/ir", "--visible",
         "{ws}/vi"), 2, "none"),  # fmt: skip
    Case("evaluate images too small for VIF", ("evaluate", "--fused", "{ws}/small_fused", "--infrared",
         "{ws}/small_ir", "--visible", "{ws}/small_vi", "--metrics", "EN", "VIF"), 1,
         "VIF needs images of at least 41x41.*--metrics EN", small_triplets),  # fmt: skip
    Case("evaluate a fused image of the wrong size", EVALUATE, 1, "must have one size",
         lambda ws: PIL.Image.new("L", (10, 10)).save(ws / "fused" / "b.png")),  # fmt: skip
    # fsdiff example
    Case("example -o under a file", ("example", "-o", "{ws}/ir.png/demo"), 2, "is a file, not a folder"),
    Case("example --size too small", ("example", "-o", "{ws}/demo", "--size", "10x10"), 2, "too small"),
]


def load(ws: Path) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    return PIL.Image.open(ws / "ir.png"), PIL.Image.open(ws / "vi.png")


API_CASES = [
    Case("api sources of two sizes", lambda pipe, ws: pipe(load(ws)[0], load(ws)[1].resize((20, 10))), ValueError,
         "size"),  # fmt: skip
    Case("api NaN in an array", lambda pipe, ws: pipe(np.full((8, 8), np.nan, np.float32), np.zeros((8, 8))),
         ValueError, "NaN"),  # fmt: skip
    Case("api missing file", lambda pipe, ws: pipe(str(ws / "none.png"), str(ws / "vi.png")), (OSError, ValueError),
         "none.png"),  # fmt: skip
    Case("api scale below 1", lambda pipe, ws: pipe(*load(ws), scale=0.5), ValueError, "scale"),
    Case("api zero steps", lambda pipe, ws: pipe(*load(ws), num_inference_steps=0), ValueError,
         "num_inference_steps"),  # fmt: skip
    Case("api tile overlap over half the tile", lambda pipe, ws: pipe(*load(ws), tile_size=64, tile_overlap=40),
         ValueError, r"`tile_overlap` must be an int from 0 to half of `tile_size` \(64\)"),  # fmt: skip
    Case("api unknown output type", lambda pipe, ws: pipe(*load(ws), output_type="jpg"), ValueError, "output_type"),
    Case("api latents of the wrong shape", lambda pipe, ws: pipe(*load(ws), scale=2, latents=torch.zeros(1, 1, 8, 8)),
         ValueError, "latents"),  # fmt: skip
    Case("api missing model folder", lambda pipe, ws: FSDiffPipeline.from_pretrained(str(ws / "no_model")),
         (OSError, ValueError), "no_model"),  # fmt: skip
]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    for stem, seed in (("a", 0), ("b", 1)):
        write_pair(tmp_path, stem, seed=seed)
    infrared, visible = example_pair(32, 24, seed=2)
    infrared.save(tmp_path / "ir.png")
    visible.save(tmp_path / "vi.png")
    (tmp_path / "fused").mkdir()
    for stem in ("a", "b"):
        PIL.Image.open(tmp_path / "ir" / f"{stem}.png").save(tmp_path / "fused" / f"{stem}.png")
    return tmp_path


def snapshot(ws: Path) -> dict[str, str]:
    """Digest of every file of the workspace's inputs (the folders and files a case starts with)."""
    files = [p for p in ws.rglob("*") if p.is_file() and not p.is_symlink()]
    return {str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def check_no_damage(ws: Path, before: dict[str, str]) -> None:
    """No input changed; no temporary file is left; every image file there decodes completely."""
    after = snapshot(ws)
    changed = [name for name, digest in before.items() if after.get(name) != digest and not name.startswith("out/")]
    assert not changed, f"inputs changed or vanished: {changed}"
    assert not [p for p in ws.rglob(f"*{PARTIAL_MARK}*")], "a temporary output was left behind"
    for path in ws.rglob("*.png"):
        if path.is_file() and path.stat().st_size and path.parent.name not in ("ir", "vi") and path.name != "ir.png":
            with PIL.Image.open(path) as image:
                image.load()


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.name for case in CLI_CASES])
def test_cli_bad_input(case, ws, model, capsys):
    if case.prepare:
        case.prepare(ws)
    before = snapshot(ws)
    argv = [arg.format(ws=ws, model=model) for arg in case.args]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    captured = capsys.readouterr()
    output = captured.err + captured.out
    assert status == case.expected, output
    assert re.search(case.message, output), output
    assert "Traceback" not in output
    check_no_damage(ws, before)


@pytest.mark.parametrize("case", API_CASES, ids=[case.name for case in API_CASES])
def test_api_bad_input(case, ws, model):
    pipe = FSDiffPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    before = snapshot(ws)
    with pytest.raises(case.expected, match=case.message):
        case.args(pipe, ws)
    check_no_damage(ws, before)


def test_cases_cover_every_command():
    commands = {case.args[0] for case in CLI_CASES}
    assert commands == {"fuse", "baseline", "evaluate", "example"}
    assert len(CLI_CASES) + len(API_CASES) >= 40


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    """Ctrl-C in the middle of writing an output: neither the final name nor a temporary file remains."""
    from fsdiff_diffusers.cli import outputs

    def interrupted(image, path, **options):
        Path(path).write_bytes(b"\x89PNG\r\n\x1a\n")  # the first bytes are out, then the user presses Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(PIL.Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        outputs.save_image(PIL.Image.new("L", (4, 4)), tmp_path / "fused.png")
    assert os.listdir(tmp_path) == []


def test_readme_lists_every_case():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## When something is wrong") :]
    missing = [case.name for case in CLI_CASES + API_CASES if case.name.split(" ", 1)[1] not in table]
    assert not missing, f"add these cases to the README's errors table: {missing}"
