"""Shared helper of the benchmark scripts: each one owns a section of `benchmarks/RESULTS.md`."""

import platform
from pathlib import Path

import torch

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; each section says the command that made it.\n"


def machine_description() -> str:
    """One line naming the machine and library versions a table was measured with."""
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """Format `rows` (lists of cells, floats shown as given by `str`) as a markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section `name` of RESULTS.md with `body`, keeping the other sections."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS_PATH.write_text(text)
