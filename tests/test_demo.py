"""The demo app (`fsdiff demo`, `examples/space/`): served on a free localhost port and driven through its `/fuse`
endpoint with gradio_client, and in a real headless Chromium with Playwright (skipped where Chromium is missing); the
comparison it shows, its CPU cap, the command and the Space folder."""

import configparser
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import numpy as np
import PIL.Image
import pytest
import torch

from fsdiff_diffusers.comparison import compare, fit_to_output_pixels, heat_map
from fsdiff_diffusers.example_pair import example_pair
from fsdiff_diffusers.loading import load_pipeline

from .test_examples import example

gr = pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")
from gradio_client import Client, handle_file  # noqa: E402 (installed with gradio)
from gradio_client.exceptions import AppError  # noqa: E402
from packaging.specifiers import SpecifierSet  # noqa: E402
from packaging.version import Version  # noqa: E402

from fsdiff_diffusers import demo as demo_module  # noqa: E402
from fsdiff_diffusers.cli import main  # noqa: E402
from fsdiff_diffusers.demo import build_demo  # noqa: E402

browser = example("demo_browser")  # drives the app in Chromium with Playwright (the test extra)

REPO_ROOT = Path(__file__).resolve().parents[1]
SPACE_DIR = REPO_ROOT / "examples" / "space"
OUTPUT_SIZE = (256, 192)  # (W, H): the 64x48 pair at the default scale, 4

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    # Gradio's queue statistics on pandas 3 (third-party noise, not ours).
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="module", autouse=True)
def loopback_only() -> list:
    """No network but loopback for the module: huggingface_hub offline (gradio_client's request headers would fetch a
    registry from the Hub), and any other connection refused and recorded; none may have been tried at the end."""
    attempts, connect = [], socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            attempts.append(address)
            raise OSError(f"test_demo: network access to {address} attempted")
        return connect(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setattr(socket.socket, "connect", guarded_connect)
        yield attempts
    assert attempts == []


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory) -> dict[str, Path]:
    """The synthetic pair at 64x48 (`infrared`, `visible`), a visible image of another size, and a file that is not an
    image."""
    folder = tmp_path_factory.mktemp("pair")
    infrared, visible = example_pair(64, 48)
    files = {name: folder / f"{name}.png" for name in ("infrared", "visible", "other_size", "not_an_image")}
    infrared.save(files["infrared"])
    visible.save(files["visible"])
    example_pair(80, 60)[1].save(files["other_size"])
    files["not_an_image"].write_bytes(b"not an image")
    return files


@pytest.fixture(scope="module")
def app_url() -> str:
    """The demo app on a free port of 127.0.0.1, for the module's tests."""
    demo = build_demo(device="cpu")
    yield browser.serve(demo)
    demo.close()


def fuse(client: Client, infrared: Path, visible: Path, model: str = "fsdiff-ir-vis") -> tuple:
    """One request to the `/fuse` endpoint: scale 4, the model's default steps and scheduler, seed 0."""
    return client.predict(handle_file(infrared), handle_file(visible), model, 4, None, "default", 0, api_name="/fuse")


def mean_difference(first: PIL.Image.Image, second: PIL.Image.Image) -> float:
    """Mean absolute difference in grey levels (0-255) of two images of one size, in RGB."""
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float64) for image in (first, second)]
    return float(np.abs(arrays[0] - arrays[1]).mean())


def test_client_fuses_and_reports_bad_input(app_url, pair_files):
    client = Client(app_url, verbose=False, analytics_enabled=False)
    slider, fused, infrared_bicubic, visible_bicubic, *clarity, summary, download = fuse(
        client, pair_files["infrared"], pair_files["visible"]
    )
    images = [PIL.Image.open(path) for path in (fused, infrared_bicubic, visible_bicubic, *slider, *clarity)]
    assert all(image.size == OUTPUT_SIZE for image in images)
    assert mean_difference(images[0], images[1]) > 5 and mean_difference(images[0], images[2]) > 5
    assert np.array_equal(np.asarray(PIL.Image.open(slider[1])), np.asarray(images[0]))  # right of the slider: FS-Diff
    assert np.array_equal(np.asarray(PIL.Image.open(download["value"])), np.asarray(images[0]))
    assert Path(download["value"]).name == "fsdiff_fsdiff-ir-vis_x4_seed0.png"
    assert "1 step of DPMSolverMultistepScheduler" in summary and "48x64 → 192x256" in summary

    with pytest.raises(AppError, match="the infrared image is 48x64 but the visible image is 60x80"):
        fuse(client, pair_files["infrared"], pair_files["other_size"])
    with pytest.raises(AppError, match="Cannot read visible image from path 'not_an_image.png'"):
        fuse(client, pair_files["infrared"], pair_files["not_an_image"])
    with pytest.raises(AppError, match="holds no model_index.json"):
        fuse(client, pair_files["infrared"], pair_files["visible"], model=str(pair_files["infrared"].parent))
    assert fuse(client, pair_files["infrared"], pair_files["visible"], model="fsdiff-medical")[-2].startswith(
        "FS-Diff took"
    )  # the app keeps serving after errors


def test_browser_fuses_and_shows_errors(app_url, pair_files, tmp_path):
    if not browser.CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}: apt-get install -y chromium, or set $FSDIFF_CHROMIUM")
    with browser.browser_page(app_url) as page:
        browser.fuse_in_page(page, pair_files["infrared"], pair_files["visible"])
        assert "48x64 → 192x256" in browser.wait_for_result(page)
        fused = browser.image_in_page(page, "fused")
        assert fused.size == OUTPUT_SIZE
        for source in ("infrared_bicubic", "visible_bicubic"):
            assert mean_difference(fused, browser.image_in_page(page, source)) > 5
        browser.save_screenshot(page, tmp_path / "demo.png")
        print(f"screenshot: {tmp_path / 'demo.png'}")

        browser.fuse_in_page(page, pair_files["infrared"], pair_files["other_size"])
        assert "the infrared image is 48x64 but the visible image is 60x80" in browser.error_message(page)
    assert PIL.Image.open(tmp_path / "demo.png").width == 960


def test_compare_baseline_and_cap():
    pipe = load_pipeline("fsdiff-ir-vis")
    pipe.set_progress_bar_config(disable=True)
    infrared, visible = example_pair(64, 48)
    result = compare(pipe, infrared, visible, scale=2)
    assert result.fused.size == result.baseline.size == (128, 96) and result.baseline.mode == "RGB"
    assert result.clarity.shape == (96, 128, 2) and not result.was_shrunk
    assert result.num_inference_steps == pipe.default_num_inference_steps

    capped = compare(pipe, infrared, visible, scale=2, max_output_pixels=3000)
    assert capped.was_shrunk and capped.source_size == (48, 64)
    assert capped.fused.width * capped.fused.height <= 3000
    assert capped.fused.width == 2 * capped.input_size[1]  # the scale is kept


def test_fit_to_output_pixels_leaves_mismatched_pairs_to_the_pipeline():
    infrared, visible = torch.rand(1, 40, 60), torch.rand(3, 30, 60)
    assert fit_to_output_pixels(infrared, visible, 4.0, 100) == (infrared, visible)
    shrunk = fit_to_output_pixels(infrared, infrared, 4.0, 9600)
    assert [tuple(image.shape) for image in shrunk] == [(1, 20, 30)] * 2


def test_heat_map_scale():
    colours = heat_map(np.array([[0.0, 0.5, 1.0]]))
    assert colours.dtype == np.uint8 and colours.tolist() == [[[0, 0, 4], [188, 55, 84], [252, 255, 164]]]


def test_demo_command(monkeypatch, tmp_path, capsys):
    calls = []

    class Served:
        def launch(self, **options):
            calls.append(options)

    monkeypatch.setattr(demo_module, "build_demo", lambda *args: calls.append(args) or Served())
    assert main(["demo", "--port", "7999", "--max-megapixel-steps", "0"]) == 0
    assert main(["demo", "--device", "cpu", "--data", str(tmp_path)]) == 0
    assert calls == [
        (None, "auto", None),  # 0: no cap
        {"server_name": "127.0.0.1", "server_port": 7999, "share": False, "inbrowser": False},
        (tmp_path, "cpu", 2.0),
        {"server_name": "127.0.0.1", "server_port": None, "share": False, "inbrowser": False},
    ]
    monkeypatch.undo()
    assert main(["demo", "--data", str(tmp_path)]) == 2  # the real app: no splits.json there
    assert f"the data folder '{tmp_path}' holds no splits.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--max-megapixel-steps", "-1"])


def test_help_does_not_import_gradio_or_diffusers():
    code = (
        "import sys\nfrom fsdiff_diffusers.cli import build_parser\nbuild_parser().format_help()\n"
        "print(sorted(name for name in ('gradio', 'diffusers') if name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_space_folder():
    front_matter = (SPACE_DIR / "README.md").read_text().split("---\n")[1]
    fields = dict(line.split(": ", 1) for line in front_matter.strip().splitlines())
    assert fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    extras = configparser.ConfigParser()
    extras.read(REPO_ROOT / "setup.cfg")
    (gradio_requirement,) = [line for line in extras["options.extras_require"]["demo"].split() if "gradio" in line]
    assert Version(fields["sdk_version"]) in SpecifierSet(gradio_requirement.removeprefix("gradio"))

    requirements = (SPACE_DIR / "requirements.txt").read_text().splitlines()
    assert extras["options"]["install_requires"].split() == [line for line in requirements if line[:1] not in "#"]
    assert isinstance(runpy.run_path(str(SPACE_DIR / "app.py"))["demo"], gr.Blocks)  # built, not launched
