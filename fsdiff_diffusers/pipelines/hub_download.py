"""What `FSDiffPipeline.from_pretrained` fetches of a Hub repository: `model_index.json`, the card, and of each
component it loads the configuration and the one weight format and variant it reads; not the remote-code modules
(the installed package has the classes), other variants or formats, nor anything else the repository holds.

Diffusers' own download step cannot serve here: it refuses repositories whose `model_index.json` names this
package's modules (folders saved before the remote-code layout), and for the remote-code layout it loads the saved
pipeline module, which needs `trust_remote_code=True` although the package's own classes are used.
"""

import json
import os
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from huggingface_hub import hf_hub_download, model_info, snapshot_download
from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

ROOT_FILES = ("model_index.json", "README.md")
"""Files at the top of the repository that a load reads (the card: `push_to_hub` uploads it again)."""

_WEIGHT = re.compile(
    r"^(?P<stem>[^.]+)(?:\.(?P<variant>[^.-]+))?(?:-\d+-of-\d+)?\.(?P<format>safetensors|bin|ckpt|pt|pth|msgpack|h5)$"
)
_WEIGHT_INDEX = re.compile(r"^(?P<stem>[^.]+)\.(?P<format>safetensors|bin)\.index(?:\.(?P<variant>[^.]+))?\.json$")


def _weight_file(name: str) -> tuple[str, str | None] | None:
    """`(format, variant)` of a weight file or weight index (`diffusion_pytorch_model.fp16.safetensors` ->
    `("safetensors", "fp16")`), `None` for any other file."""
    match = _WEIGHT.match(name) or _WEIGHT_INDEX.match(name)
    return (match["format"], match["variant"]) if match else None


def component_files(
    names: Iterable[str], variant: str | None = None, use_safetensors: bool | None = None
) -> list[str]:
    r"""
    The files of one component folder that loading it reads.

    Args:
        names (`Iterable[str]`): The file names in the folder (no subfolders).
        variant (`str`, *optional*): The weight variant asked for; a component without it falls back to its default
            weights, as Diffusers does.
        use_safetensors (`bool`, *optional*): `False` reads pickled weights (`.bin`); otherwise safetensors where the
            folder has them.

    Returns:
        `list[str]`: every non-weight file but Python modules (configurations, processor settings), and the weight
        files (with their index) of one format and variant.
    """
    names = list(names)
    weights = {name: _weight_file(name) for name in names}
    formats = {found[0] for found in weights.values() if found}
    if use_safetensors is False:
        wanted_format = "bin" if "bin" in formats else None
    else:
        wanted_format = "safetensors" if "safetensors" in formats else min(formats, default=None)
    variants = {found[1] for found in weights.values() if found and found[0] == wanted_format}
    wanted_variant = variant if variant in variants else None
    chosen = []
    for name in names:
        found = weights[name]
        if found is None:
            if not name.endswith(".py"):
                chosen.append(name)
        elif found == (wanted_format, wanted_variant):
            chosen.append(name)
    return sorted(chosen)


def pipeline_files(
    filenames: Iterable[str],
    model_index: Mapping[str, Any],
    variant: str | None = None,
    use_safetensors: bool | None = None,
    skip: Collection[str] = (),
) -> list[str]:
    r"""
    The files of a pipeline repository that `FSDiffPipeline.from_pretrained` reads.

    Args:
        filenames (`Iterable[str]`): Every file of the repository, as paths relative to its root.
        model_index (`Mapping[str, Any]`): Its `model_index.json`.
        variant (`str`, *optional*), use_safetensors (`bool`, *optional*): As taken by `from_pretrained`.
        skip (`Collection[str]`): Components passed to `from_pretrained` (not downloaded).

    Returns:
        `list[str]`: [`ROOT_FILES`] that exist and, for each component the index names (not `null`, not skipped), the
        files [`component_files`] picks in its folder.
    """
    filenames = list(filenames)
    components = {
        name
        for name, entry in model_index.items()
        if not name.startswith("_") and isinstance(entry, list) and entry and entry[0] is not None and name not in skip
    }
    by_folder: dict[str, list[str]] = {}
    for path in filenames:
        folder, _, name = path.rpartition("/")
        if folder in components:
            by_folder.setdefault(folder, []).append(name)
    chosen = [path for path in ROOT_FILES if path in filenames]
    for folder, names in sorted(by_folder.items()):
        chosen += [f"{folder}/{name}" for name in component_files(names, variant, use_safetensors)]
    return chosen


def download_pipeline(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    variant: str | None = None,
    use_safetensors: bool | None = None,
    skip: Collection[str] = (),
) -> str:
    r"""
    Fetch what [`pipeline_files`] selects of the Hub repository `repo_id` into the Hugging Face cache.

    Offline (`local_files_only`, `HF_HUB_OFFLINE`), or when the Hub cannot be reached, the cached snapshot is used as
    it is. A repository or revision that does not exist, and an invalid id, raise `huggingface_hub`'s errors.

    Returns:
        `str`: the snapshot folder.
    """
    cached = dict(revision=revision, cache_dir=cache_dir, token=token)
    if local_files_only:
        return snapshot_download(repo_id, local_files_only=True, **cached)
    try:
        info = model_info(repo_id, revision=revision, token=token)
    except (HFValidationError, RepositoryNotFoundError, RevisionNotFoundError):
        raise
    except Exception:  # offline mode, no connection, a server error: what the cache holds, as snapshot_download does
        return snapshot_download(repo_id, local_files_only=True, **cached)
    filenames = [sibling.rfilename for sibling in info.siblings or ()]
    index_file = hf_hub_download(repo_id, "model_index.json", force_download=force_download, **cached)
    with open(index_file, encoding="utf-8") as index:
        model_index = json.load(index)
    allow_patterns = pipeline_files(filenames, model_index, variant, use_safetensors, skip)
    return snapshot_download(repo_id, allow_patterns=allow_patterns, force_download=force_download, **cached)
