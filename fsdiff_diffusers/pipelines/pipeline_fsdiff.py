"""FSDiffPipeline: simultaneous multimodal image fusion and super-resolution by conditional diffusion."""

import inspect
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from huggingface_hub import ModelCard, create_repo, snapshot_download, upload_folder
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError
from transformers import CLIPVisionModelWithProjection
from transformers.image_processing_utils import BaseImageProcessor

from ..image_processor import (
    InputRange,
    PipelineImageInput,
    crop_to,
    output_size_for,
    pad_to_multiple,
    postprocess,
    prepare_pair_batch,
    resize,
)
from ..model_card import model_card as render_model_card
from ..models.clarity_mamba import ClarityMambaEncoder
from ..models.unet_fsdiff import FSDiffUNet2DModel
from ..weights import SHIPPED_MODELS


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


MAX_TRAINED_SCALE = 8
"""The largest upscaling factor the shipped models were trained for (they serve x2 to x8)."""


def available_memory(device: torch.device) -> int | None:
    """
    Bytes that can still be allocated on `device`: free memory on a CUDA GPU, `MemAvailable` of /proc/meminfo for
    the CPU on Linux; `None` where unknown (other systems, MPS).
    """
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _repeats(timesteps: torch.Tensor) -> bool:
    """Whether two consecutive entries of `timesteps` (shape `(num_steps,)`) are equal."""
    return bool((timesteps[1:] == timesteps[:-1]).any())


def _type_names(values: list) -> str:
    return ", ".join(sorted({type(value).__name__ for value in values}))


FALLBACK_NUM_INFERENCE_STEPS = 10
"""Steps of a pipeline whose config registers no `default_num_inference_steps` (folders saved before it existed)."""


class FSDiffPipeline(DiffusionPipeline):
    r"""
    Pipeline for simultaneous fusion and super-resolution of two source images of one scene (infrared + visible, or
    MRI + CT/PET/SPECT), as in FS-Diff.

    The sources are reduced to their luminance (Y of YCbCr), upsampled bicubically to the output size and mirrored
    into a margin around it (see [`canvas_size`]). The [`ClarityMambaEncoder`] encodes them once; the
    [`FSDiffUNet2DModel`] then denoises the fused luminance (or, for a U-Net with `diffusion_target="residual"`, its
    difference from a classical fusion of the upsampled sources) from Gaussian noise with any Diffusers scheduler.
    The visible image's upsampled chroma is put back at the end, so a colour visible image gives a colour result and a
    grey one a grey result.

    This model inherits from [`DiffusionPipeline`]: loading, saving, devices and offloading work as in Diffusers.

    Args:
        unet ([`FSDiffUNet2DModel`]): The conditional denoiser.
        clarity_encoder ([`ClarityMambaEncoder`]): Encodes the upsampled sources into context tokens and feature maps.
        scheduler ([`SchedulerMixin`]): Any scheduler compatible with [`DDPMScheduler`]; DPM-Solver++ by default.
        semantic_encoder ([`~transformers.CLIPVisionModelWithProjection`], *optional*):
            A CLIP vision model whose image embedding of each source is appended to the context tokens. The clarity
            encoder must then be configured with `semantic_embed_dim` equal to its `projection_dim`.
        feature_extractor ([`~transformers.image_processing_utils.BaseImageProcessor`], *optional*):
            Preprocessing for `semantic_encoder`, for example a `CLIPImageProcessorPil`.
        default_num_inference_steps (`int`, *optional*):
            The steps a call takes when it is given no `num_inference_steps` (registered in the config, so saved and
            loaded with the pipeline); [`FALLBACK_NUM_INFERENCE_STEPS`] when unset.
    """

    model_cpu_offload_seq = "semantic_encoder->clarity_encoder->unet"
    # Peak memory of a call per pixel of the canvas (see `canvas_size`) in float32, measured for the shipped
    # architecture: 440 bytes of live tensors (the encoder's, then the U-Net's activations plus the encoder features
    # and sampler state the U-Net needs) at 1 and 4 megapixels on the CPU, plus 10 % for the allocator.
    canvas_pixel_bytes = 480
    # Per source pixel: the loaded images (RGB and its YCbCr split, float32) of both sources.
    source_pixel_bytes = 32
    _optional_components = ["semantic_encoder", "feature_extractor"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        unet: FSDiffUNet2DModel,
        clarity_encoder: ClarityMambaEncoder,
        scheduler: SchedulerMixin,
        semantic_encoder: CLIPVisionModelWithProjection | None = None,
        feature_extractor: BaseImageProcessor | None = None,
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

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "FSDiffPipeline":
        r"""
        Load a pipeline from a local folder, from the name of a model shipped with the package (a key of
        `fsdiff_diffusers.SHIPPED_MODELS`: `"fsdiff-ir-vis"` or `"fsdiff-medical"`; a folder of that name wins) or from
        a Hub repository id.

        Hub ids are first fetched with `huggingface_hub.snapshot_download` (honouring `revision`, `cache_dir`,
        `token`, `local_files_only` and `HF_HUB_OFFLINE`), because Diffusers' own download step does not accept
        components defined outside `diffusers` and `transformers`. All other keyword arguments (`dtype`,
        `variant`, components to replace, ...) go to [`DiffusionPipeline.from_pretrained`].
        """
        name = str(pretrained_model_name_or_path)
        if name in SHIPPED_MODELS and not os.path.isdir(name):
            pretrained_model_name_or_path = SHIPPED_MODELS[name]
            if not os.path.isfile(os.path.join(pretrained_model_name_or_path, "model_index.json")):
                raise OSError(
                    f"The model {name!r} shipped with fsdiff-diffusers is missing from this installation "
                    f"({pretrained_model_name_or_path} holds no model_index.json): reinstall the package "
                    "(pip install --force-reinstall fsdiff-diffusers), or pass a folder or a Hub id."
                )
        if not os.path.isdir(pretrained_model_name_or_path):
            download_keys = ("revision", "cache_dir", "token", "local_files_only")
            download_kwargs = {key: kwargs.pop(key) for key in download_keys if key in kwargs}
            try:
                pretrained_model_name_or_path = snapshot_download(name, **download_kwargs)
            except HFValidationError as error:
                raise ValueError(
                    f"{name!r} is neither a folder nor a valid Hub repository id ('org/name'): pass the folder "
                    "written by `save_pretrained` or a Hub id."
                ) from error
            except (LocalEntryNotFoundError, RepositoryNotFoundError) as error:
                raise OSError(
                    f"No folder {name!r} exists, and no Hub repository {name!r} could be found "
                    f"({type(error).__name__}: offline without it in the cache, or absent/private on the Hub). "
                    "Pass the folder written by `save_pretrained`, or a Hub id that is cached or reachable."
                ) from error
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def model_card(self, repo_id: str, **details) -> ModelCard:
        r"""
        The model card of this pipeline as pushed to `repo_id`: description, component sizes, usage, training,
        evaluation, limitations and citation.

        Args:
            repo_id (`str`): The Hub id (or folder name) the card's title and usage examples name.
            details: `training`, `evaluation`, `training_data` and `limitations`, as taken by
                [`fsdiff_diffusers.model_card.model_card`].
        """
        return render_model_card(self, repo_id, **details)

    def upload_card(self, repo_id: str) -> ModelCard:
        """
        The card [`push_to_hub`] uploads by default: the `README.md` of the local folder this pipeline was loaded from
        (so a card written by the training script keeps its training and evaluation sections), else
        [`model_card`]`(repo_id)`.
        """
        folder = self.name_or_path
        saved = os.path.join(folder, "README.md") if folder and os.path.isdir(folder) else None
        if saved and os.path.isfile(saved):
            return ModelCard.load(saved)
        return self.model_card(repo_id)

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        variant: str | None = None,
        model_card: ModelCard | None = None,
    ) -> str:
        """
        Save the pipeline with a model card (`README.md`: `model_card`, by default [`upload_card`]) and upload it to
        the Hub repository `repo_id`.
        """
        repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, variant=variant)
            (model_card or self.upload_card(repo_id)).save(os.path.join(folder, "README.md"))
            return upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                commit_message=commit_message or "Upload FSDiffPipeline",
                token=token,
                create_pr=create_pr,
            )

    def check_inputs(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None,
        latents_shape: tuple[int, ...],
        num_inference_steps: int,
        callback_on_step_end_tensor_inputs: Sequence[str],
    ) -> None:
        generators = generator if isinstance(generator, list) else [generator]
        if generator is not None and not all(isinstance(g, torch.Generator) for g in generators):
            raise TypeError(
                f"`generator` must be a torch.Generator or a list of them, got {_type_names(generators)}: for a seed, "
                "pass `torch.Generator().manual_seed(0)` (on a GPU, `torch.Generator('cuda').manual_seed(0)`)."
            )
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"Got a list of {len(generator)} generators for a batch of {batch_size} pairs: pass one generator, "
                f"or a list with one generator per pair."
            )
        if latents is not None and tuple(latents.shape) != latents_shape:
            raise ValueError(
                f"`latents` must have shape {latents_shape} (batch, 1, `pipe.canvas_size(height, width)` of the "
                f"output size: a margin of {self.unet.downsample_factor} pixels on every side, padded to a multiple "
                f"of it), got {tuple(latents.shape)}."
            )
        if latents is not None and not torch.isfinite(latents).all():
            raise ValueError(
                "`latents` contains NaN or infinite values: pass finite noise, e.g. "
                "`torch.randn(shape, generator=torch.Generator().manual_seed(0))`, or leave `latents` out."
            )
        if not isinstance(num_inference_steps, int) or isinstance(num_inference_steps, bool) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` may only name {self._callback_tensor_inputs}, got {unknown}."
            )
        scheduler_prediction = self.scheduler.config.get("prediction_type", "epsilon")
        if scheduler_prediction != self.unet.config.prediction_type:
            raise ValueError(
                f"The scheduler expects prediction_type={scheduler_prediction!r} but the U-Net was trained for "
                f"{self.unet.config.prediction_type!r}: create the scheduler with "
                f"`SchedulerClass.from_config(pipe.scheduler.config)` or pass "
                f"prediction_type={self.unet.config.prediction_type!r}."
            )

    def canvas_size(self, height: int, width: int) -> tuple[int, int]:
        """
        The `(height, width)` the U-Net samples for an output of `(height, width)`: a margin of
        `unet.downsample_factor` pixels on every side, filled with the mirrored sources, then up to a multiple of it
        at the bottom and right (see [`~image_processor.pad_to_multiple`]). The margin keeps the zero padding of the
        U-Net's and the encoder's convolutions outside the output, where it would draw faint lines along the edges.
        """
        factor = self.unet.downsample_factor
        return tuple(-(-(size + 2 * factor) // factor) * factor for size in (height, width))

    def estimate_memory(
        self, input_size: tuple[int, int], output_size: tuple[int, int], batch_size: int = 1
    ) -> int:
        """
        Estimated peak memory, in bytes, of fusing `batch_size` pairs of `input_size` `(height, width)` into
        `output_size`: [`canvas_pixel_bytes`] per pixel of the canvas (scaled to the U-Net's dtype) and
        [`source_pixel_bytes`] per source pixel. Whatever the number of steps: a step frees what the previous one
        allocated. Measured on the CPU for the shipped architecture (both shipped models share it), about 0.45 GiB
        per output megapixel in float32; other architectures differ.
        """
        canvas_height, canvas_width = self.canvas_size(*output_size)
        canvas = canvas_height * canvas_width * self.canvas_pixel_bytes * self.unet.dtype.itemsize // 4
        return batch_size * (canvas + input_size[0] * input_size[1] * self.source_pixel_bytes)

    def check_output_size(
        self, input_size: tuple[int, int], output_size: tuple[int, int], batch_size: int, device: torch.device
    ) -> None:
        """
        Warn beyond x8 (the models serve x2 to x8), and refuse an output whose [`estimate_memory`] exceeds the memory
        available on `device` (see [`available_memory`]) before anything is allocated, instead of failing deep inside
        a convolution.
        """
        scale = max(output / source for output, source in zip(output_size, input_size))
        if scale > MAX_TRAINED_SCALE:
            warnings.warn(
                f"Upscaling x{scale:.3g} ({input_size[0]}x{input_size[1]} -> {output_size[0]}x{output_size[1]}): the "
                f"models were trained for x2 to x{MAX_TRAINED_SCALE}, so detail beyond that is bicubic guesswork.",
                stacklevel=4,  # the caller of __call__ (under torch.no_grad's wrapper)
            )
        needed, available = self.estimate_memory(input_size, output_size, batch_size), available_memory(device)
        if available is None or needed <= available:
            return
        fitting_scale = scale * (available / needed) ** 0.5
        raise ValueError(
            f"Fusing {batch_size} pair(s) of {input_size[0]}x{input_size[1]} into {output_size[0]}x{output_size[1]} "
            f"needs about {needed / 2**30:.1f} GiB of memory, but {device.type} has {available / 2**30:.1f} GiB "
            f"available: use a smaller `scale` or `output_size` (about x{fitting_scale:.3g} or less fits; the models "
            f"serve x2 to x{MAX_TRAINED_SCALE}), fewer pairs per call, or a device with more memory."
        )

    def check_timesteps(self, num_inference_steps: int) -> None:
        """
        Refuse a step count at which a multistep solver (DPM-Solver++, UniPC, DEIS: schedulers with a `solver_order`)
        repeats a timestep, as it does for `num_inference_steps >= num_train_timesteps` (the spacing rounds that many
        steps onto fewer integer timesteps). These solvers divide by the step between consecutive noise levels, so a
        repeated timestep turns the sample into NaN: an all-black image. Call after `scheduler.set_timesteps`.
        """
        if "solver_order" not in self.scheduler.config or not _repeats(self.scheduler.timesteps):
            return
        probe = type(self.scheduler).from_config(self.scheduler.config)
        usable = min(num_inference_steps - 1, self.scheduler.config.num_train_timesteps)
        while usable > 1:
            probe.set_timesteps(usable)
            if not _repeats(probe.timesteps):
                break
            usable -= 1
        name, trained = type(self.scheduler).__name__, self.scheduler.config.num_train_timesteps
        raise ValueError(
            f"{name} cannot take {num_inference_steps} steps: the model was trained on {trained} timesteps, so some of "
            f"its timesteps repeat, and this multistep solver would divide by zero between them (NaN, a black image). "
            f"Use at most {usable} steps, or DDPMScheduler / DDIMScheduler for up to {trained} steps."
        )

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

    @torch.no_grad()
    def __call__(
        self,
        infrared: PipelineImageInput,
        visible: PipelineImageInput,
        scale: float | None = None,
        output_size: tuple[int, int] | None = None,
        num_inference_steps: int | None = None,
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
    ) -> ImagePipelineOutput | tuple:
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
                of 1000), DDPM and DDIM up to all of them.
            generator (`torch.Generator` or a list of them, *optional*): For deterministic sampling; a list gives
                each pair of a batch its own generator. Not a seed: pass `torch.Generator().manual_seed(seed)`.
            latents (`torch.Tensor` of shape `(batch, 1, H, W)`, *optional*): Initial noise, `(H, W)` being
                [`canvas_size`] of the output size.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (float (B, H, W, C) in [0, 1]) or `"pt"`
                (float (B, C, H, W) in [0, 1]).
            return_dict (`bool`, defaults to `True`): Return an [`ImagePipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): Called after every step as
                `callback_on_step_end(self, step, timestep, callback_kwargs)`; may return replaced tensors.
            callback_on_step_end_tensor_inputs (`Sequence[str]`, defaults to `("latents",)`): Tensors passed to it.
            input_range (`str`, `(float, float)` or a pair of them, defaults to `"auto"`): Which stored values become
                black and white, for both sources or as `(infrared_range, visible_range)`: `"full"` (the dtype's
                range: 255, 65535, floats in [0, 1]), `"auto"` (as `"full"`, but uint16 spanning less than 2**14,
                such as 12- or 14-bit radiometric infrared counts, and floats outside [0, 1], such as kelvin, are
                mapped from their own 0.5 and 99.5 percentiles) or `(low, high)` in the stored units; values outside
                are clipped. See [`~image_processor.load_image`].

        Returns:
            [`ImagePipelineOutput`] or `tuple`: the fused images.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        if num_inference_steps is None:
            num_inference_steps = self.default_num_inference_steps
        if scale is None and output_size is None:
            scale = 4.0

        inputs = prepare_pair_batch(infrared, visible, input_range)
        batch_size = inputs.infrared.shape[0]
        height, width = output_size_for(tuple(inputs.infrared.shape[-2:]), scale, output_size)
        latents_shape = (batch_size, 1, *self.canvas_size(height, width))
        self.check_inputs(
            batch_size, generator, latents, latents_shape, num_inference_steps, callback_on_step_end_tensor_inputs
        )

        device = self._execution_device
        dtype = self.unet.dtype
        self.check_output_size(inputs.size, (height, width), batch_size, device)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        self.check_timesteps(num_inference_steps)

        # 1. Conditions: upsampled luminance in [-1, 1], on the canvas (see `canvas_size`); encoded once.
        sources = torch.cat([inputs.infrared, inputs.visible], dim=1)
        upsampled = resize(sources, (height, width))
        margin = self.unet.downsample_factor
        conditions, _ = pad_to_multiple(upsampled, margin, margin)
        conditions = (conditions * 2 - 1).to(device=device, dtype=dtype)
        semantic_embeds = self.encode_semantics(sources)
        encoded = self.clarity_encoder(conditions.to(self.clarity_encoder.dtype), semantic_embeds=semantic_embeds)
        context, features = encoded.context, encoded.features
        base = self.unet.residual_base(conditions)

        # 2. Noise and timesteps.
        latents = self.prepare_latents(latents_shape, dtype, device, generator, latents)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator)

        # 3. Denoising loop.
        timesteps = self.scheduler.timesteps
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                model_input = torch.cat([self.scheduler.scale_model_input(latents, t), conditions], dim=1)
                prediction = self.unet(model_input, t, context, features, return_dict=False)[0]
                latents = self.scheduler.step(prediction, t, latents, **extra_step_kwargs, return_dict=False)[0]

                if callback_on_step_end is not None:
                    callback_kwargs = {}
                    for k in callback_on_step_end_tensor_inputs:
                        callback_kwargs[k] = locals()[k]
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                progress_bar.update()

        # 4. Sample -> fused image (a residual model adds its base), unpad, back to [0, 1], restore the chroma.
        luminance = (crop_to(self.unet.to_image(latents, base), (height, width), margin).float().cpu() + 1) / 2
        chroma = None if inputs.visible_chroma is None else resize(inputs.visible_chroma, (height, width))
        images = postprocess(luminance, chroma, inputs.is_colour, output_type)

        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
