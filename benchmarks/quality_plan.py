"""Which FS-Diff model `quality.py` runs on which dataset: the plan (`FSDiffPlan`, made by `quality.plan_fsdiff`)
and the checks it rests on."""

from dataclasses import dataclass, field
from pathlib import Path


def model_present(path: str) -> bool:
    """Whether the folder `path` holds a saved pipeline (a model_index.json)."""
    return (Path(path) / "model_index.json").is_file()


def display_path(path: str) -> str:
    """`path` relative to the repository when it lies inside it (as the report shows it)."""
    root = Path(__file__).resolve().parents[1]
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


@dataclass
class FSDiffModel:
    """One FS-Diff model of a report and where it runs.

    Args:
        label (`str`): how the report names it. path (`str`): its folder or Hub id, for `load_pipeline`.
        datasets (`list[str]`): the datasets (out of `--datasets`) it runs on.
        missing (`str`): why it cannot run ("" when it can); its datasets then show the baselines only.
    """

    label: str
    path: str
    datasets: list[str]
    missing: str = ""

    def runs(self) -> bool:
        """Whether it runs anywhere (it is there, and one of its datasets was asked for)."""
        return bool(self.datasets) and not self.missing


@dataclass
class FSDiffPlan:
    """Which model runs FS-Diff on which dataset (`plan_fsdiff`).

    Args:
        models (`list[FSDiffModel]`): the models, each with its datasets.
        baselines_only (`dict[str, str]`): dataset (out of `--datasets`) -> why FS-Diff does not run on it.
    """

    models: list[FSDiffModel] = field(default_factory=list)
    baselines_only: dict[str, str] = field(default_factory=dict)

    def model_of(self, dataset: str) -> FSDiffModel | None:
        """The model that runs on `dataset` (`None`: baselines only)."""
        return next((model for model in self.models if model.runs() and dataset in model.datasets), None)

    def rows_text(self, dataset: str, method: str) -> str:
        """One sentence for the tables of `dataset`: which rows are FS-Diff and which model made them ("" without
        `--pipeline`)."""
        if not self.models:
            return ""
        model = self.model_of(dataset)
        if model is None:
            return f"No FS-Diff rows here: {self.baselines_only.get(dataset, 'FS-Diff did not run on it')}."
        return f'The rows "{method}" are FS-Diff: {model.label}.'
