"""A Gradio app to try FS-Diff in a browser: `fsdiff demo`, and the Hub Space of `examples/space/`.

Upload an infrared (or MRI) and a visible (or CT / PET / SPECT) image, or pick an example, choose the model, scale,
steps, sampler and seed; the page shows the fused image against the best classical baseline (a before / after
slider), the bicubic-upsampled sources, the encoder's clarity maps, the seconds taken, and a download button. Needs
the `demo` extra (`pip install "fsdiff-diffusers[demo]"`).

On the CPU, a request is capped at [`CPU_MEGAPIXEL_STEPS`] output megapixels times denoising steps, so that it ends in
under a minute on one core: larger inputs are shrunk first (the scale is kept), and the page says so. On a GPU there
is no cap.

```py
>>> from fsdiff_diffusers.demo import build_demo

>>> build_demo().launch()  # http://127.0.0.1:7860
```
"""

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import PIL.Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before Gradio is imported: no usage reports
import gradio as gr  # noqa: E402

from .comparison import BASELINE_METHOD, CPU_MEGAPIXEL_STEPS, compare, heat_map  # noqa: E402
from .example_pair import example_pair  # noqa: E402
from .loading import SCHEDULER_ALIASES, load_pipeline, resolve_device, scheduler_class  # noqa: E402
from .shared_data import find_data_dir, split_pair  # noqa: E402

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    from .pipelines.pipeline_fsdiff import FSDiffPipeline

MODELS = {"fsdiff-ir-vis": "Infrared + visible", "fsdiff-medical": "Medical: MRI + CT / PET / SPECT"}
"""The shipped models the model menu offers (any folder or Hub id can be typed in as well)."""

DATA_EXAMPLES = {
    "TNO": "fsdiff-ir-vis",
    "MSRS": "fsdiff-ir-vis",
    "Harvard_MRI_CT": "fsdiff-medical",
    "Harvard_MRI_PET": "fsdiff-medical",
    "Harvard_MRI_SPECT": "fsdiff-medical",
}
"""Datasets of the shared data whose first test pair is offered as an example, and the model for each."""

DEFAULT_SCHEDULER = "default"
"""The sampler menu's entry for the model's own scheduler."""


class PipelineCache:
    """Pipelines loaded once per model id, on one device, each with the scheduler it was saved with.

    Requests run one at a time (the demo's event has `concurrency_limit=1`), so a cached pipeline's scheduler can be
    swapped for a request.
    """

    def __init__(self, device: str = "auto"):
        self.device = resolve_device(device)
        self._loaded: dict[str, tuple[FSDiffPipeline, SchedulerMixin]] = {}

    def get(self, model: str, scheduler: str = DEFAULT_SCHEDULER) -> "FSDiffPipeline":
        """The pipeline of `model` (a shipped model's name, a folder or a Hub id) with `scheduler` (an alias of
        `SCHEDULER_ALIASES`, a Diffusers class name, or `DEFAULT_SCHEDULER`).

        Raises:
            `ValueError`: from [`load_pipeline`] or [`scheduler_class`], saying what to pass instead.
        """
        if model not in self._loaded:
            pipe = load_pipeline(model, device=self.device)
            self._loaded[model] = pipe, pipe.scheduler
        pipe, own_scheduler = self._loaded[model]
        if scheduler == DEFAULT_SCHEDULER:
            pipe.scheduler = own_scheduler
        else:
            pipe.scheduler = scheduler_class(scheduler, own_scheduler).from_config(own_scheduler.config)
        return pipe


def cap_note(max_megapixel_steps: float | None) -> str:
    """The page's line about the output cap."""
    if max_megapixel_steps is None:
        return "No output cap here: the request is fused at the size you ask for."
    return (
        f"This demo runs on a CPU, so a request is capped at {max_megapixel_steps:g} output megapixels times steps "
        f"({max_megapixel_steps:g} MP at 1 step): larger inputs are shrunk first, keeping the scale. Run "
        "`fsdiff demo` on a GPU, or `fsdiff fuse`, for full-size results."
    )


def write_examples(folder: Path, data_dir: Path | None) -> tuple[list[list], list[str]]:
    """Writes the synthetic example pair into `folder` and copies the first test pair of each of [`DATA_EXAMPLES`]
    from `data_dir`; returns the examples' rows `[infrared, visible, model, scale]` and their labels."""
    infrared, visible = example_pair()
    infrared.save(folder / "synthetic_infrared.png")
    visible.save(folder / "synthetic_visible.png")
    rows = [[str(folder / "synthetic_infrared.png"), str(folder / "synthetic_visible.png"), "fsdiff-ir-vis", 4]]
    labels = ["Synthetic street scene (drawn, not real data)"]
    for dataset, model in DATA_EXAMPLES.items() if data_dir else ():
        sources = split_pair(data_dir, dataset)
        copies = [folder / f"{dataset}_{source.parent.name}_{source.name}" for source in sources]
        for source, copy in zip(sources, copies):
            shutil.copyfile(source, copy)
        rows.append([*map(str, copies), model, 4])
        labels.append(f"{dataset} {sources[0].stem} (test split, {' + '.join(s.parent.name for s in sources)})")
    return rows, labels


def build_demo(
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    max_megapixel_steps: float | None = CPU_MEGAPIXEL_STEPS,
) -> gr.Blocks:
    """
    The FS-Diff demo app.

    Args:
        data_dir (`str` or `os.PathLike`, *optional*): the shared data folder whose test pairs become examples; by
            default found by [`find_data_dir`] (`$FSDIFF_DATA`, or `../shared/data`), and left out when absent.
        device (`str`, defaults to `"auto"`): where the pipelines run (`"auto"`: CUDA, else MPS, else the CPU).
        max_megapixel_steps (`float`, *optional*): on the CPU, the cap of a request in output megapixels times steps
            (larger inputs are shrunk first); `None` for no cap. Never applied on a GPU.

    Returns:
        `gr.Blocks`: launch it with `.launch()`; its one endpoint is `/fuse`.
    """
    pipelines = PipelineCache(device)
    if pipelines.device.type != "cpu":
        max_megapixel_steps = None
    data_dir = find_data_dir(data_dir)
    work_dir = Path(tempfile.mkdtemp(prefix="fsdiff-demo-"))
    example_rows, example_labels = write_examples(work_dir, data_dir)
    downloads = work_dir / "download"

    def fuse(
        infrared: dict | None,
        visible: dict | None,
        model: str,
        scale: float,
        steps: float | None,
        scheduler: str,
        seed: float,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's way to ask for a progress bar)
    ) -> tuple:
        """One request: the pair's [`Comparison`] as the page shows it; bad input as a `gr.Error` message.

        The images come unprocessed (`preprocess=False`: Gradio's `FileData` of each upload, a dict with its `path`),
        so that the pipeline's own loader reads them: every format and bit depth it takes, and its message for a file
        it cannot read.
        """
        if infrared is None or visible is None:
            raise gr.Error("Upload both images (infrared or MRI, and visible or CT / PET / SPECT), or pick an example.")
        try:
            pipe = pipelines.get(model.strip(), scheduler.strip() or DEFAULT_SCHEDULER)
            steps = int(steps) if steps else pipe.default_num_inference_steps
            max_pixels = None if max_megapixel_steps is None else int(max_megapixel_steps * 1e6 / max(steps, 1))
            result = compare(
                pipe, infrared["path"], visible["path"], scale, steps, int(seed), max_output_pixels=max_pixels
            )
        except ValueError as error:
            message = str(error)
            for upload in (infrared, visible):  # the name the user knows instead of the upload's cache path
                message = message.replace(upload["path"], upload.get("orig_name") or Path(upload["path"]).name)
            raise gr.Error(message, print_exception=False) from error
        # One file at a time: Gradio copied the previous request's into its cache (requests run one at a time).
        shutil.rmtree(downloads, ignore_errors=True)
        downloads.mkdir()
        output = downloads / f"fsdiff_{Path(model).name}_x{scale:g}_seed{int(seed)}.png"
        result.fused.save(output)
        height, width = result.fused.height, result.fused.width
        summary = (
            f"FS-Diff took **{result.seconds:.1f} s** ({steps} step{'s' * (steps > 1)} of "
            f"{type(pipe.scheduler).__name__} on {pipelines.device.type}): {result.input_size[0]}x"
            f"{result.input_size[1]} → {height}x{width} pixels (H x W)."
        )
        if result.was_shrunk:
            summary += (
                f" The {result.source_size[0]}x{result.source_size[1]} inputs were shrunk to keep within this demo's "
                f"cap of {max_megapixel_steps:g} megapixels × steps."
            )
        return (
            (result.baseline, result.fused),
            result.fused,
            result.infrared_bicubic,
            result.visible_bicubic,
            *(PIL.Image.fromarray(heat_map(result.clarity[..., index])) for index in range(2)),
            summary,
            gr.DownloadButton(value=str(output), visible=True),
        )

    # Uploads and results are kept in Gradio's cache for an hour (checked hourly), so a long-running Space stays small.
    with gr.Blocks(
        title="FS-Diff: image fusion + super-resolution", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        gr.Markdown(
            "# FS-Diff: fuse two images of one scene and super-resolve them\n"
            "Give a registered pair of the same size: an **infrared** and a **visible** image (or an **MRI** and a "
            "**CT / PET / SPECT** slice with the medical model). FS-Diff fuses them into one image, `scale` times "
            "larger, with the visible image's colour. Left of the slider: the best classical baseline "
            f"(bicubic upsampling + `{BASELINE_METHOD}` fusion); right: FS-Diff.\n\n" + cap_note(max_megapixel_steps)
        )
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Row():
                    infrared = gr.Image(label="Infrared or MRI", elem_id="infrared", height=220)
                    visible = gr.Image(label="Visible, CT, PET or SPECT", elem_id="visible", height=220)
                model = gr.Dropdown(
                    choices=[(f"{label} ({name})", name) for name, label in MODELS.items()],
                    value="fsdiff-ir-vis",
                    allow_custom_value=True,
                    label="Model",
                    info="A shipped model, or a folder saved with save_pretrained, or a Hub id.",
                )
                scale = gr.Slider(1, 8, value=4, step=0.5, label="Scale", info="The models were trained for x2 to x8.")
                with gr.Accordion("Sampling", open=False):
                    steps = gr.Number(
                        value=None,
                        precision=0,
                        minimum=1,
                        label="Steps",
                        info="Empty: the model's default (1 for the shipped models).",
                    )
                    scheduler = gr.Dropdown(
                        choices=[DEFAULT_SCHEDULER, *SCHEDULER_ALIASES],
                        value=DEFAULT_SCHEDULER,
                        allow_custom_value=True,
                        label="Scheduler",
                        info="default: the model's own (DPM-Solver++); or a Diffusers scheduler class name.",
                    )
                    seed = gr.Number(value=0, precision=0, label="Seed")
                run = gr.Button("Fuse", variant="primary", elem_id="run")
            with gr.Column(scale=3):
                slider = gr.ImageSlider(
                    label=f"Bicubic + {BASELINE_METHOD} (left) | FS-Diff (right)", type="pil", format="png"
                )
                summary = gr.Markdown(elem_id="summary")
                download = gr.DownloadButton("Download the fused PNG", visible=False, elem_id="download")
        with gr.Row():
            fused = gr.Image(label="FS-Diff", format="png", elem_id="fused", height=300)
            infrared_bicubic = gr.Image(
                label="Infrared / MRI, bicubic", format="png", elem_id="infrared_bicubic", height=300
            )
            visible_bicubic = gr.Image(
                label="Visible / CT / PET / SPECT, bicubic", format="png", elem_id="visible_bicubic", height=300
            )
        gr.Markdown(
            "**Clarity maps** of the encoder: how sharp and clean it finds each source, pixel by pixel, from 0 "
            "(black: blurred or noisy) through purple and orange to 1 (pale yellow: sharp)."
        )
        with gr.Row():
            clarity_infrared = gr.Image(label="Clarity: infrared / MRI", format="png", height=300)
            clarity_visible = gr.Image(label="Clarity: visible / CT / PET / SPECT", format="png", height=300)
        gr.Examples(
            example_rows, [infrared, visible, model, scale], example_labels=example_labels, cache_examples=False
        )
        run.click(
            fuse,
            [infrared, visible, model, scale, steps, scheduler, seed],
            [slider, fused, infrared_bicubic, visible_bicubic, clarity_infrared, clarity_visible, summary, download],
            api_name="fuse",
            preprocess=False,
            concurrency_limit=1,
        )
    weakref.finalize(demo, shutil.rmtree, work_dir, ignore_errors=True)  # the examples and downloads go with the app
    return demo
