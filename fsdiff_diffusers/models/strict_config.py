"""Configs that refuse unknown keys: a typo in a model's config.json fails at load time instead of being ignored."""

import difflib
from typing import Any

# What `diffusers.training_utils.EMAModel.save_pretrained` writes into an EMA copy's config.json besides the model's
# own arguments (its `state_dict()` less `shadow_params`), and what `EMAModel.from_pretrained` reads back from it.
EMA_CONFIG_KEYS = frozenset(
    ("decay", "min_decay", "optimization_step", "update_after_step", "use_ema_warmup", "inv_gamma", "power")
)


class StrictConfigMixin:
    """
    For a `ModelMixin, ConfigMixin` model: refuse config keys that are neither arguments of its `__init__`, nor
    Diffusers' bookkeeping (keys starting with `_`, `quantization_config`), nor the EMA state of an EMA copy
    ([`EMA_CONFIG_KEYS`]). Diffusers itself only logs a one-line warning and builds the model with the default value of
    the misspelt argument, which gives wrong outputs with no error.
    """

    @classmethod
    def extract_init_dict(cls, config_dict: dict[str, Any], **kwargs):
        valid = cls._get_init_keys(cls) - {"self"}
        unknown = sorted(
            key
            for key in config_dict
            if key not in valid
            and key not in EMA_CONFIG_KEYS
            and not key.startswith("_")
            and key != "quantization_config"
        )
        if unknown:
            hints = []
            for key in unknown:
                closest = difflib.get_close_matches(key, valid, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {closest[0]!r}?)" if closest else ""))
            raise ValueError(
                f"The {cls.__name__} config ({cls.config_name}) has unknown keys: {', '.join(hints)}. Fix or remove "
                f"them; the valid keys are {', '.join(sorted(valid))}."
            )
        return super().extract_init_dict(config_dict, **kwargs)
