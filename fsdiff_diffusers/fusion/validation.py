"""Input checks shared by the classical fusion rules."""


import torch


def check_image(image: torch.Tensor, name: str) -> None:
    """Raise `ValueError` unless `image` is a finite floating-point `(B, C, H, W)` tensor."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor laid out as (B, C, H, W), got {type(image).__name__}.")
    if image.ndim != 4:
        raise ValueError(f"`{name}` must be a 4D tensor laid out as (B, C, H, W), got shape {tuple(image.shape)}.")
    if not image.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor with values in [0, 1], got {image.dtype}.")
    if not torch.isfinite(image).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")


def check_pair(first: torch.Tensor, second: torch.Tensor, names: tuple[str, str] = ("infrared", "visible")) -> None:
    """Raise `ValueError` unless both tensors pass `check_image` and share shape, dtype and device."""
    check_image(first, names[0])
    check_image(second, names[1])
    if first.shape != second.shape:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same shape, got {names[0]} {tuple(first.shape)} "
            f"and {names[1]} {tuple(second.shape)}."
        )
    if first.dtype != second.dtype or first.device != second.device:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must share dtype and device, got {first.dtype} on {first.device} "
            f"and {second.dtype} on {second.device}."
        )


def working_dtype(image: torch.Tensor) -> torch.dtype:
    """The dtype filters compute in: the input's, but at least float32 (half precision is promoted)."""
    return torch.promote_types(image.dtype, torch.float32)
