"""FSDiffPipeline: simultaneous multimodal image fusion and super-resolution by conditional diffusion.

The sampling lives here; loading, model cards and uploads in `hub.py` (`FSDiffHubMixin`), saving with remote code in
`remote_layout.py`, the checks of the arguments, memory and step counts and the timestep schedule in `checks.py`
(`FSDiffChecksMixin`). Folders saved before the remote-code layout name this module in model_index.json; this module
is also the source of the pipeline's remote code (`pipeline_fsdiff.py` saved with the weights, see
`fsdiff_diffusers.remote_code`).
"""

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor

from ..image_processor import (
    InputRange,
    PipelineImageInput,
    crop_to,
    nhwc,
    output_size_for,
    pad_to_multiple,
    postprocess,
    prepare_pair_batch,
    resize,
)
from ..models.clarity_mamba import ClarityMambaEncoder
from ..models.unet_fsdiff import FSDiffUNet2DModel
from .checks import FSDiffChecksMixin
from .hub import FSDiffHubMixin
from .pipeline_output import FSDiffPipelineOutput
from .thresholding import large_sample_thresholding
from .tiling import DEFAULT_TILE_OVERLAP, FSDiffTilingMixin, plan_tiles

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from fsdiff_diffusers import FSDiffPipeline
        >>> from fsdiff_diffusers.example_pair import example_pair

        >>> pipe = FSDiffPipeline.from_pretrained("fsdiff-ir-vis")  # shipped with the package; or a folder, a Hub id
        >>> infrared, visible = example_pair()  # a synthetic 160x120 pair (PIL images)
        >>> fused = pipe(infrared, visible, scale=4, generator=torch.Generator().manual_seed(0)).images[0]
        >>> fused.save("fused_x4.png")

        >>> # Only Diffusers installed: the saved folder or Hub repository carries this pipeline's code.
        >>> from diffusers import DiffusionPipeline

        >>> pipe = DiffusionPipeline.from_pretrained("path/to/saved-pipeline", trust_remote_code=True)
        ```
"""


def default_scheduler(prediction_type: str = "epsilon") -> DPMSolverMultistepScheduler:
    """
    The sampler FS-Diff pipelines ship with: DPM-Solver++ (multistep) with x0 clipped to the [-1, 1] image range, for a
    U-Net trained with `prediction_type` ("epsilon", "sample" or "v_prediction").
    """
    return DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        algorithm_type="dpmsolver++",
        thresholding=True,
        sample_max_value=1.0,
        prediction_type=prediction_type,
    )


NUMPY_ARRAY_NOTICE = "__array__ implementation doesn't accept a copy keyword"
"""The DeprecationWarning numpy 2 gives when diffusers' `set_timesteps` converts a torch tensor (not our code)."""

FALLBACK_NUM_INFERENCE_STEPS = 10
"""Steps of a pipeline whose config registers no `default_num_inference_steps` (folders saved before it existed)."""


class FSDiffPipeline(FSDiffHubMixin, FSDiffChecksMixin, FSDiffTilingMixin, DiffusionPipeline):
    r"""
    Pipeline for simultaneous fusion and super-resolution of two source images of one scene (infrared + visible, or
    MRI + CT/PET/SPECT), as in FS-Diff.

    The sources are reduced to their luminance (Y of YCbCr), upsampled bicubically to the output size and mirrored
    into a margin around it (see [`canvas_size`]). The [`ClarityMambaEncoder`] encodes them once; the
    [`FSDiffUNet2DModel`] then denoises the fused luminance (or, for a U-Net with `diffusion_target="residual"`, its
    difference from a classical fusion of the upsampled sources) from Gaussian noise with any Diffusers scheduler.
    The visible image's upsampled chroma is put back at the end, so a colour visible image gives a colour result and a
    grey one a grey result.

    This model inherits from [`DiffusionPipeline`]: loading, saving, devices and offloading work as in Diffusers. Its
    Hub loading and uploads come from [`FSDiffHubMixin`], its input, memory and step checks from [`FSDiffChecksMixin`].

    Args:
        unet ([`FSDiffUNet2DModel`]): The conditional denoiser.
        clarity_encoder ([`ClarityMambaEncoder`]): Encodes the upsampled sources into context tokens and feature maps.
        scheduler ([`SchedulerMixin`]): Any scheduler compatible with [`DDPMScheduler`]; DPM-Solver++ by default.
        semantic_encoder ([`~transformers.CLIPVisionModelWithProjection`], *optional*):
            A CLIP vision model whose image embedding of each source is appended to the context tokens. The clarity
            encoder must then be configured with `semantic_embed_dim` equal to its `projection_dim`. Needs
            `transformers` (`pip install "fsdiff-diffusers[clip]"`); the pipeline never imports it otherwise.
        feature_extractor ([`~transformers.image_processing_utils.BaseImageProcessor`], *optional*):
            Preprocessing for `semantic_encoder`, for example a `CLIPImageProcessorPil`.
        default_num_inference_steps (`int`, *optional*):
            The steps a call takes when it is given no `num_inference_steps` (registered in the config, so saved and
            loaded with the pipeline); [`FALLBACK_NUM_INFERENCE_STEPS`] when unset.
    """

    model_cpu_offload_seq = "semantic_encoder->clarity_encoder->unet"
    _optional_components = ["semantic_encoder", "feature_extractor"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        unet: FSDiffUNet2DModel,
        clarity_encoder: ClarityMambaEncoder,
        scheduler: SchedulerMixin,
        semantic_encoder: torch.nn.Module | None = None,
        feature_extractor: Callable | None = None,
        default_num_inference_steps: int | None = None,
    ):
        super().__init__()
        self.register_modules(
            unet=unet,
            clarity_encoder=clarity_encoder,
            scheduler=scheduler,
            semantic_encoder=semantic_encoder,
            feature_extractor=feature_extractor,
        )
        self.register_to_config(default_num_inference_steps=default_num_inference_steps)

    @property
    def default_num_inference_steps(self) -> int:
        """
        The steps a call without `num_inference_steps` takes: the `default_num_inference_steps` registered in the
        pipeline's config (chosen on validation pairs for the shipped models, saved in `model_index.json`), else
        `FALLBACK_NUM_INFERENCE_STEPS`.
        """
        return self.config.get("default_num_inference_steps") or FALLBACK_NUM_INFERENCE_STEPS

    @classmethod
    def from_models(
        cls, unet: FSDiffUNet2DModel, clarity_encoder: ClarityMambaEncoder, **components: Any
    ) -> "FSDiffPipeline":
        """
        A pipeline of trained models with the sampler FS-Diff ships with: [`default_scheduler`] for the U-Net's
        `prediction_type`. `components` (the optional semantic encoder and its feature extractor) are passed on.
        """
        scheduler = default_scheduler(unet.config.prediction_type)
        return cls(unet=unet, clarity_encoder=clarity_encoder, scheduler=scheduler, **components)

    def canvas_size(self, height: int, width: int) -> tuple[int, int]:
        """
        The `(height, width)` the U-Net samples for an output of `(height, width)`: a margin of
        `unet.downsample_factor` pixels on every side, filled with the mirrored sources, then up to a multiple of it
        at the bottom and right (see [`~image_processor.pad_to_multiple`]). The margin keeps the zero padding of the
        U-Net's and the encoder's convolutions outside the output, where it would draw faint lines along the edges.
        """
        factor = self.unet.downsample_factor
        return tuple(-(-(size + 2 * factor) // factor) * factor for size in (height, width))

    def prepare_extra_step_kwargs(self, generator: torch.Generator | list[torch.Generator] | None) -> dict[str, Any]:
        """Pass `generator` to `scheduler.step` only where the scheduler accepts it (UniPC, DEIS, ... do not)."""
        accepted = set(inspect.signature(self.scheduler.step).parameters)
        return {"generator": generator} if "generator" in accepted else {}

    def prepare_latents(
        self,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None,
    ) -> torch.Tensor:
        """Initial noise of `shape`, scaled by the scheduler's `init_noise_sigma`."""
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

    def encode_semantics(self, sources: torch.Tensor) -> torch.Tensor | None:
        r"""
        Per-modality image embeddings of the optional semantic encoder.

        Args:
            sources (`torch.Tensor` of shape `(batch, num_modalities, height, width)`): Source luminance in [0, 1].

        Returns:
            `torch.Tensor` of shape `(batch, num_modalities, projection_dim)`, or `None` without a semantic encoder.
        """
        if self.semantic_encoder is None:
            return None
        if self.feature_extractor is None:
            raise ValueError("A `semantic_encoder` needs a `feature_extractor` (a CLIP image processor) to go with it.")
        batch, modalities = sources.shape[:2]
        images = [image.repeat(3, 1, 1).float().cpu().numpy() for image in sources.flatten(0, 1).unsqueeze(1)]
        pixel_values = self.feature_extractor(
            images=images, return_tensors="pt", do_rescale=False, input_data_format="channels_first"
        ).pixel_values
        pixel_values = pixel_values.to(device=self.semantic_encoder.device, dtype=self.semantic_encoder.dtype)
        embeds = self.semantic_encoder(pixel_values=pixel_values).image_embeds
        return embeds.view(batch, modalities, -1)

    def clarity_maps(
        self, clarity: torch.Tensor, canvas_size: tuple[int, int], output_size: tuple[int, int], output_type: str
    ) -> torch.Tensor | np.ndarray:
        r"""
        The encoder's clarity at the output size, for `return_clarity=True`.

        Args:
            clarity (`torch.Tensor` of shape `(batch, num_modalities, h, w)`): The `clarity` of a
                [`ClarityMambaEncoderOutput`] of the canvas (or of the canvas scaled down), in (0, 1).
            canvas_size (`tuple[int, int]`): The canvas `(height, width)` (see [`canvas_size`]).
            output_size (`tuple[int, int]`): The output `(height, width)`.
            output_type (`str`): `"pt"` for a tensor, else a numpy array.

        Returns:
            `torch.Tensor` of shape `(batch, num_modalities, height, width)` for `output_type="pt"`, else a float32
            `np.ndarray` of shape `(batch, height, width, num_modalities)`; resized bilinearly, margin cropped.
        """
        maps = F.interpolate(clarity.float(), size=canvas_size, mode="bilinear", align_corners=False)
        maps = crop_to(maps, output_size, self.unet.downsample_factor).cpu()
        return maps if output_type == "pt" else maps.permute(0, 2, 3, 1).numpy()

    @property
    def num_timesteps(self) -> int:
        """The number of denoising steps of the latest call (set when it starts sampling)."""
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set to `True` (from `callback_on_step_end`, as `pipe._interrupt = True`) to skip the remaining steps of a
        call: it then returns the image of the sample as it stands."""
        return self._interrupt

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        infrared: PipelineImageInput,
        visible: PipelineImageInput,
        scale: float | None = None,
        output_size: tuple[int, int] | None = None,
        num_inference_steps: int | None = None,
        timesteps: Sequence[int] | None = None,
        sigmas: Sequence[float] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict]
        | PipelineCallback
        | MultiPipelineCallbacks
        | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        input_range: InputRange | tuple[InputRange, InputRange] = "auto",
        return_clarity: bool = False,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
    ) -> FSDiffPipelineOutput | tuple:
        r"""
        Fuse and super-resolve pairs of source images.

        Args:
            infrared (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor`, path, or a list of them):
                The first source of each pair (infrared, or MRI for medical pairs). Grey, RGB or RGBA, 8 or 16 bit or
                float (see `input_range`); numpy arrays as (H, W) or (H, W, C), tensors as (C, H, W) or (1, C, H, W).
            visible (same types as `infrared`):
                The second source (visible, or CT/PET/SPECT), same size as its `infrared` partner. Its colour is kept.
            scale (`float`, *optional*):
                Upscaling factor, any number >= 1; the output is the input size times `scale`, rounded. 4 when
                neither `scale` nor `output_size` is given.
            output_size (`tuple[int, int]`, *optional*): Output (height, width), instead of `scale`.
            num_inference_steps (`int`, *optional*): Denoising steps of the scheduler, by default the pipeline's
                [`default_num_inference_steps`] (chosen on validation pairs for the shipped models); multistep solvers
                (the default DPM-Solver++, UniPC, DEIS) take fewer than the U-Net's training timesteps (at most 999
                of 1000), DDPM and DDIM up to all of them. Ignored when `timesteps` or `sigmas` is given.
            timesteps (`Sequence[int]`, *optional*): A custom, decreasing schedule of training timesteps, for schedulers
                whose `set_timesteps` takes `timesteps` (DDPM, DPM-Solver++, UniPC, Euler, ...); the steps are then
                `len(timesteps)`.
            sigmas (`Sequence[float]`, *optional*): A custom, decreasing schedule of noise levels, for schedulers whose
                `set_timesteps` takes `sigmas` (Euler, Heun, ...), in the form it takes them (Euler's end with the final
                level, 0: one more than the steps); not together with `timesteps`.
            generator (`torch.Generator` or a list of them, *optional*): For deterministic sampling; a list gives
                each pair of a batch its own generator. Not a seed: pass `torch.Generator().manual_seed(seed)`.
            latents (`torch.Tensor` of shape `(batch, 1, H, W)`, *optional*): Initial noise, `(H, W)` being
                [`canvas_size`] of the output size.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (float (B, H, W, C) in [0, 1]) or `"pt"`
                (float (B, C, H, W) in [0, 1]).
            return_dict (`bool`, defaults to `True`): Return an [`FSDiffPipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): Called after every step as
                `callback_on_step_end(self, step, timestep, callback_kwargs)`; may return replaced tensors.
            callback_on_step_end_tensor_inputs (`Sequence[str]`, defaults to `("latents",)`): Tensors passed to it.
            input_range (`str`, `(float, float)` or a pair of them, defaults to `"auto"`): Which stored values become
                black and white, for both sources or as `(infrared_range, visible_range)`: `"full"` (the dtype's
                range: 255, 65535, floats in [0, 1]), `"auto"` (as `"full"`, but uint16 spanning less than 2**14,
                such as 12- or 14-bit radiometric infrared counts, and floats outside [0, 1], such as kelvin, are
                mapped from their own 0.5 and 99.5 percentiles) or `(low, high)` in the stored units; values outside
                are clipped. See [`~image_processor.load_image`].
            return_clarity (`bool`, defaults to `False`): Also return the encoder's clarity map of each source at the
                output size (`FSDiffPipelineOutput.clarity`; the tuple's second item).
            tile_size (`int`, *optional*): Denoise the output in overlapping square tiles of this many pixels a side,
                in memory bounded by the tile, not the image (see [`~pipelines.tiling`]). By default tiles of
                [`DEFAULT_TILE_SIZE`] are used only when the canvas has more than [`max_untiled_pixels`] pixels or does
                not fit into the available memory; a `tile_size` at least the canvas's size turns tiling off.
            tile_overlap (`int`, *optional*): Pixels by which neighbouring tiles overlap at least; their predictions
                are blended across it. At most half of `tile_size`; by default [`DEFAULT_TILE_OVERLAP`], or a quarter
                of a smaller `tile_size`.

        Examples:

        Returns:
            [`FSDiffPipelineOutput`] or `tuple`: the fused images, and the clarity maps with `return_clarity=True`.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        if num_inference_steps is None and timesteps is None and sigmas is None:
            num_inference_steps = self.default_num_inference_steps
        self._interrupt = False
        if scale is None and output_size is None:
            scale = 4.0

        inputs = prepare_pair_batch(infrared, visible, input_range)
        batch_size = inputs.infrared.shape[0]
        height, width = output_size_for(tuple(inputs.infrared.shape[-2:]), scale, output_size)
        latents_shape = (batch_size, 1, *self.canvas_size(height, width))
        self.check_inputs(
            batch_size,
            generator,
            latents,
            latents_shape,
            num_inference_steps,
            callback_on_step_end_tensor_inputs,
            timesteps=timesteps,
            sigmas=sigmas,
        )

        device = self._execution_device
        dtype = self.unet.dtype
        self.check_tiling(tile_size, tile_overlap)
        tile_size = self.tile_size_for(inputs.size, (height, width), batch_size, device, tile_size)
        if tile_overlap is None:
            tile_overlap = min(DEFAULT_TILE_OVERLAP, (tile_size or 0) // 4)
        self.check_output_size(inputs.size, (height, width), batch_size, device, tile_size)
        with warnings.catch_warnings():  # diffusers' schedulers call np.array on torch tensors: numpy 2's notice
            warnings.filterwarnings("ignore", message=NUMPY_ARRAY_NOTICE, category=DeprecationWarning)
            self.prepare_timesteps(num_inference_steps, device, timesteps, sigmas)

        # 1. Conditions: upsampled luminance in [-1, 1], on the canvas (see `canvas_size`); encoded once, or on the
        # canvas scaled down to one tile for a tiled call (its context then serves every tile).
        sources = torch.cat([inputs.infrared, inputs.visible], dim=1)
        margin = self.unet.downsample_factor
        conditions = nhwc(pad_to_multiple(resize(sources, (height, width)), margin, margin)[0])
        tiles = plan_tiles(latents_shape[-2:], tile_size, tile_overlap, margin) if tile_size else None
        semantic_embeds = self.encode_semantics(sources)
        encoded = self.clarity_encoder(
            self.encoder_view(conditions, tile_size).to(device=device, dtype=self.clarity_encoder.dtype),
            semantic_embeds=semantic_embeds,
        )
        conditions = (conditions * 2 - 1).to(device=device, dtype=dtype)
        base = self.unet.residual_base(conditions)

        # 2. Noise and timesteps.
        latents = self.prepare_latents(latents_shape, dtype, device, generator, latents)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator)

        # 3. Denoising loop.
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps) * len(tiles or [None])) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                sample = self.scheduler.scale_model_input(latents, t)
                if tiles is None:
                    model_input = nhwc(torch.cat([sample, conditions], dim=1))
                    prediction = self.unet(model_input, t, encoded.context, encoded.features, return_dict=False)[0]
                    progress_bar.update()
                else:
                    prediction = self.predict_tiles(
                        sample, t, conditions, encoded.context, semantic_embeds, tiles, tile_overlap, progress_bar
                    )
                with large_sample_thresholding(self.scheduler, latents):
                    latents = self.scheduler.step(prediction, t, latents, **extra_step_kwargs, return_dict=False)[0]

                if callback_on_step_end is not None:
                    callback_kwargs = {}
                    for k in callback_on_step_end_tensor_inputs:
                        callback_kwargs[k] = locals()[k]
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)

        # 4. Sample -> fused image (a residual model adds its base), unpad, back to [0, 1], restore the chroma.
        luminance = (crop_to(self.unet.to_image(latents, base), (height, width), margin).float().cpu() + 1) / 2
        chroma = None if inputs.visible_chroma is None else resize(inputs.visible_chroma, (height, width))
        images = postprocess(luminance, chroma, inputs.is_colour, output_type)
        clarity = None
        if return_clarity:
            canvas_clarity = (
                encoded.clarity
                if tiles is None
                else self.tiled_clarity(conditions, semantic_embeds, tiles, tile_overlap)
            )
            clarity = self.clarity_maps(canvas_clarity, latents_shape[-2:], (height, width), output_type)

        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,) if clarity is None else (images, clarity)
        return FSDiffPipelineOutput(images=images, clarity=clarity)
