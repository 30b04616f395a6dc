"""Drive the demo app (`fsdiff demo`) in a real, headless Chromium with Playwright: serve it on a free localhost port,
upload a pair, fuse it, read the result or the error message off the page, and take a screenshot.

Run as a script, it writes the README's screenshot of the app fusing the synthetic example pair. `tests/test_demo.py`
drives the app with the same functions. Needs `pip install -e ".[demo,test]"` and a Chromium (Debian:
`apt-get install -y chromium`; another binary by `$FSDIFF_CHROMIUM`; `playwright install` is not needed).

```bash
python examples/demo_browser.py                          # -> examples/gallery/demo.png
python examples/demo_browser.py --out /tmp/demo.png --width 1280
```
"""

import argparse
import io
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import PIL.Image
from playwright.sync_api import Page, sync_playwright

from fsdiff_diffusers.demo import build_demo
from fsdiff_diffusers.example_pair import example_pair

CHROMIUM = Path(os.environ.get("FSDIFF_CHROMIUM", "/usr/bin/chromium"))
"""The Chromium binary Playwright launches (Debian's package by default)."""

SCREENSHOT = Path(__file__).resolve().parent / "gallery" / "demo.png"
"""The README's screenshot of the app."""


def serve(demo: gr.Blocks) -> str:
    """Launches `demo` on a free port of 127.0.0.1 in background threads (no share link); returns its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=True, quiet=True
    )
    return url


CHROMIUM_OFFLINE = ["--disable-background-networking", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
"""Chromium flags that keep it off the network: no background services, and no host name resolves (the app is
reached by its IP address)."""


@contextmanager
def browser_page(url: str, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A headless Chromium page of `width` x `height` CSS pixels, offline but for the app at `url`, which it loads."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_OFFLINE)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("#run")
            yield page
        finally:
            browser.close()


def fuse_in_page(page: Page, infrared: Path, visible: Path) -> None:
    """Uploads the two images and clicks "Fuse"; the result or an error message follows (see [`wait_for_result`],
    [`error_message`])."""
    page.locator("#infrared input[type=file]").set_input_files(infrared)
    page.locator("#visible input[type=file]").set_input_files(visible)
    page.wait_for_selector("#infrared img")
    page.wait_for_selector("#visible img")
    page.click("#run")


def wait_for_result(page: Page, timeout_s: float = 120) -> str:
    """Waits until the fused image is shown; returns the line that says how long FS-Diff took."""
    page.wait_for_selector("#fused img", timeout=timeout_s * 1000)
    summary = page.locator("#summary")
    summary.get_by_text("FS-Diff took").wait_for(timeout=timeout_s * 1000)
    return summary.inner_text()


def error_message(page: Page, timeout_s: float = 60) -> str:
    """The text of the first error message the page shows (waiting for it)."""
    toast = page.locator('[data-testid="toast-text"]').first
    toast.wait_for(timeout=timeout_s * 1000)
    return toast.inner_text()


def image_in_page(page: Page, elem_id: str) -> PIL.Image.Image:
    """The image an output component (by `elem_id`) shows, as the server sent it."""
    source = page.locator(f"#{elem_id} img").first.get_attribute("src")
    response = page.request.get(source)
    return PIL.Image.open(io.BytesIO(response.body()))


def save_screenshot(page: Page, path: Path, width: int = 960, colours: int = 96) -> None:
    """A full-page screenshot, shrunk to `width` pixels and reduced to `colours` colours: a small PNG for a README."""
    shot = PIL.Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    shot = shot.resize((width, round(shot.height * width / shot.width)), PIL.Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    shot.quantize(colours, method=PIL.Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SCREENSHOT, help=f"the PNG to write (default: {SCREENSHOT})")
    parser.add_argument("--width", type=int, default=960, help="width of the PNG in pixels (default: 960)")
    args = parser.parse_args(argv)

    demo = build_demo(device="cpu")
    url = serve(demo)
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / "infrared.png", Path(folder) / "visible.png"]
        for image, path in zip(example_pair(), paths):
            image.save(path)
        with browser_page(url) as page:
            fuse_in_page(page, *paths)
            print(wait_for_result(page))
            save_screenshot(page, args.out, args.width)
    demo.close()
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
