"""What `FSDiffPipeline` checks before it samples (`FSDiffChecksMixin`): its arguments, the memory an output needs
against what the device has (refused before anything is allocated), and step counts or custom timestep schedules that
the scheduler cannot take; each refusal says plainly what to change."""

import inspect
import warnings
from collections.abc import Sequence

import torch

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


def _sized(values) -> bool:
    """Whether `values` has a length of at least one."""
    try:
        return len(values) > 0
    except TypeError:
        return False


def _type_names(values: list) -> str:
    return ", ".join(sorted({type(value).__name__ for value in values}))


class FSDiffChecksMixin:
    """The checks of [`FSDiffPipeline`] (mixed in before [`DiffusionPipeline`]) and its memory estimate."""

    # Peak memory of a call per pixel of the canvas (see `canvas_size`) in float32, measured for the shipped
    # architecture: 440 bytes of live tensors (the encoder's, then the U-Net's activations plus the encoder features
    # and sampler state the U-Net needs) at 1 and 4 megapixels on the CPU, plus 10 % for the allocator.
    canvas_pixel_bytes = 480
    # Per source pixel: the loaded images (RGB and its YCbCr split, float32) of both sources.
    source_pixel_bytes = 32
    # Per canvas pixel of a tiled call, besides one tile's `canvas_pixel_bytes`: the whole-image tensors (conditions,
    # sample, prediction, blending weights, residual base, the scheduler's state and the output), in float32.
    tiled_canvas_pixel_bytes = 96
    # Canvases of more pixels than this are denoised in tiles unless a call sets `tile_size` (about 2.8 GiB untiled).
    max_untiled_pixels = 6 * 2**20

    def check_inputs(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None,
        latents_shape: tuple[int, ...],
        num_inference_steps: int | None,
        callback_on_step_end_tensor_inputs: Sequence[str],
        timesteps: Sequence[int] | None = None,
        sigmas: Sequence[float] | None = None,
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
        if timesteps is not None and sigmas is not None:
            raise ValueError("Pass either `timesteps` or `sigmas` (a custom schedule), not both.")
        for kind, schedule in (("timesteps", timesteps), ("sigmas", sigmas)):
            if schedule is not None and (isinstance(schedule, (str, bytes)) or not _sized(schedule)):
                raise ValueError(f"`{kind}` must be a non-empty sequence of numbers, got {schedule!r}.")
        if (
            timesteps is None
            and sigmas is None
            and (
                not isinstance(num_inference_steps, int)
                or isinstance(num_inference_steps, bool)
                or num_inference_steps < 1
            )
        ):
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

    def estimate_memory(
        self,
        input_size: tuple[int, int],
        output_size: tuple[int, int],
        batch_size: int = 1,
        tile_size: int | None = None,
    ) -> int:
        """
        Estimated peak memory, in bytes, of fusing `batch_size` pairs of `input_size` `(height, width)` into
        `output_size`: [`canvas_pixel_bytes`] per pixel of the canvas, or with `tile_size` of one tile, (scaled to
        the U-Net's dtype), [`tiled_canvas_pixel_bytes`] per canvas pixel when tiled and [`source_pixel_bytes`] per
        source pixel. Whatever the number of steps: a step frees what the previous one allocated. Measured on the CPU
        for the shipped architecture (both shipped models share it), about 0.45 GiB per output megapixel in float32
        untiled; other architectures differ.
        """
        canvas_height, canvas_width = self.canvas_size(*output_size)
        denoised = canvas_height * canvas_width
        whole_image = 0
        if tile_size is not None:
            denoised = min(tile_size, canvas_height) * min(tile_size, canvas_width)
            whole_image = canvas_height * canvas_width * self.tiled_canvas_pixel_bytes
        models = denoised * self.canvas_pixel_bytes * self.unet.dtype.itemsize // 4
        return batch_size * (models + whole_image + input_size[0] * input_size[1] * self.source_pixel_bytes)

    def check_output_size(
        self,
        input_size: tuple[int, int],
        output_size: tuple[int, int],
        batch_size: int,
        device: torch.device,
        tile_size: int | None = None,
    ) -> None:
        """
        Warn beyond x8 (the models serve x2 to x8), and refuse an output whose [`estimate_memory`] (with `tile_size`)
        exceeds the memory available on `device` (see [`available_memory`]) before anything is allocated, instead of
        failing deep inside a convolution.
        """
        scale = max(output / source for output, source in zip(output_size, input_size))
        if scale > MAX_TRAINED_SCALE:
            warnings.warn(
                f"Upscaling x{scale:.3g} ({input_size[0]}x{input_size[1]} -> {output_size[0]}x{output_size[1]}): the "
                f"models were trained for x2 to x{MAX_TRAINED_SCALE}, so detail beyond that is bicubic guesswork.",
                stacklevel=4,  # the caller of __call__ (under torch.no_grad's wrapper)
            )
        needed = self.estimate_memory(input_size, output_size, batch_size, tile_size)
        available = available_memory(device)
        if available is None or needed <= available:
            return
        fitting_scale = scale * (available / needed) ** 0.5
        tiles = "a smaller `tile_size`, " if tile_size is not None else ""
        raise ValueError(
            f"Fusing {batch_size} pair(s) of {input_size[0]}x{input_size[1]} into {output_size[0]}x{output_size[1]} "
            f"needs about {needed / 2**30:.1f} GiB of memory, but {device.type} has {available / 2**30:.1f} GiB "
            f"available: use {tiles}a smaller `scale` or `output_size` (about x{fitting_scale:.3g} or less fits; the "
            f"models serve x2 to x{MAX_TRAINED_SCALE}), fewer pairs per call, or a device with more memory."
        )

    def prepare_timesteps(
        self,
        num_inference_steps: int | None,
        device: torch.device,
        timesteps: Sequence[int] | None = None,
        sigmas: Sequence[float] | None = None,
    ) -> None:
        """
        Set the scheduler's timesteps: `num_inference_steps` evenly spaced ones (checked by [`check_timesteps`]), or the
        custom schedule `timesteps` / `sigmas` where the scheduler's `set_timesteps` takes one. A custom schedule that
        the scheduler does not take, or that repeats a timestep under a multistep solver, is refused.
        """
        if timesteps is None and sigmas is None:
            self.scheduler.set_timesteps(num_inference_steps, device=device)
            self.check_timesteps(num_inference_steps)
            return
        kind, schedule = ("timesteps", timesteps) if timesteps is not None else ("sigmas", sigmas)
        name = type(self.scheduler).__name__
        if kind not in inspect.signature(self.scheduler.set_timesteps).parameters:
            examples = "EulerDiscreteScheduler" if kind == "sigmas" else "DPMSolverMultistepScheduler, DDPMScheduler"
            raise ValueError(
                f"{name} does not take custom `{kind}`: use `num_inference_steps`, or a scheduler whose "
                f"`set_timesteps` accepts `{kind}` (for example {examples}, created with "
                "`.from_config(pipe.scheduler.config)`)."
            )
        if isinstance(schedule, torch.Tensor):
            schedule = schedule.tolist()
        self.scheduler.set_timesteps(**{kind: list(schedule)}, device=device)
        if "solver_order" in self.scheduler.config and _repeats(self.scheduler.timesteps):
            raise ValueError(
                f"The custom `{kind}` give {name} a repeated timestep, and this multistep solver would divide by zero "
                f"between them (NaN, a black image): pass strictly decreasing `{kind}`."
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
