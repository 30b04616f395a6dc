"""Where `FSDiffPipeline`s come from and go to (`FSDiffHubMixin`): a shipped model's name, a local folder or a Hub id
(of which only the files the pipeline reads are fetched, see `hub_download`), in the layout saved before remote code
or with it (`remote_layout`: this package's classes are used either way); model cards; uploads of the pipeline with
its card."""

import os
import tempfile
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCard, create_repo, upload_folder
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

from ..model_card import model_card as render_model_card
from ..models.clarity_mamba import ClarityMambaEncoder
from ..models.unet_fsdiff import FSDiffUNet2DModel
from ..weights import SHIPPED_MODELS
from .hub_download import download_pipeline
from .remote_layout import FSDiffRemoteCodeMixin, remote_module_name

if TYPE_CHECKING:
    from .pipeline_fsdiff import FSDiffPipeline

PACKAGE_COMPONENT_CLASSES = {cls.__name__: cls for cls in (FSDiffUNet2DModel, ClarityMambaEncoder)}
"""The package's component classes, which a remote-code `model_index.json` names by module file."""


class FSDiffHubMixin(FSDiffRemoteCodeMixin):
    """Loading, model cards and uploads of [`FSDiffPipeline`] (mixed in before [`DiffusionPipeline`]); saving with
    remote code from [`FSDiffRemoteCodeMixin`]."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "FSDiffPipeline":
        r"""
        Load a pipeline from a local folder, from the name of a model shipped with the package (a key of
        `fsdiff_diffusers.SHIPPED_MODELS`: `"fsdiff-ir-vis"` or `"fsdiff-medical"`; a folder of that name wins) or from
        a Hub repository id.

        Of a Hub id, only what the pipeline reads is fetched, with `huggingface_hub` (honouring `revision`,
        `cache_dir`, `token`, `local_files_only`, `force_download` and `HF_HUB_OFFLINE`): `model_index.json`, the card,
        and of each component not passed as an argument its configuration and its weights in the requested `variant`
        (see [`~pipelines.hub_download.pipeline_files`]). Diffusers' own download step would refuse folders saved
        before the remote-code layout and run the saved code of newer ones. Folders in either layout load with this
        package's classes (see [`load_config`]). All other keyword arguments (`dtype`, `variant`, components to
        replace, ...) go to [`DiffusionPipeline.from_pretrained`].
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
            download_keys = ("revision", "cache_dir", "token", "local_files_only", "force_download")
            download_kwargs = {key: kwargs.pop(key) for key in download_keys if key in kwargs}
            components = {key for key, value in kwargs.items() if not key.startswith("_")}
            try:
                pretrained_model_name_or_path = download_pipeline(
                    name,
                    variant=kwargs.get("variant"),
                    use_safetensors=kwargs.get("use_safetensors"),
                    skip=components,
                    **download_kwargs,
                )
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

    @classmethod
    def load_config(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs) -> Any:
        """
        `ConfigMixin.load_config`, with the remote-code entries of a `model_index.json` (module files saved with the
        weights, see [`~pipelines.remote_layout`]) read as the package modules that define those classes, so that
        `FSDiffPipeline.from_pretrained` builds the installed package's pipeline and components from any folder instead
        of running the saved code.
        """
        loaded = super().load_config(pretrained_model_name_or_path, *args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        class_name = config.get("_class_name")
        if isinstance(class_name, list) and class_name == [remote_module_name(cls), cls.__name__]:
            config["_class_name"] = cls.__name__
        for name, entry in config.items():
            if isinstance(entry, list) and len(entry) == 2 and entry[1] in PACKAGE_COMPONENT_CLASSES:
                package_class = PACKAGE_COMPONENT_CLASSES[entry[1]]
                if entry[0] == remote_module_name(package_class):
                    config[name] = [package_class.__module__, entry[1]]
        return loaded

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
