"""Self-contained remote-code modules of a saved pipeline, generated from this package's own source.

Diffusers loads a pipeline whose classes it does not define from Python files saved with the weights
(`DiffusionPipeline.from_pretrained(folder_or_hub_id, trust_remote_code=True)`): the pipeline's module at the top of
the folder and one module per custom component in that component's subfolder (the layout is in
[`~pipelines.remote_layout`]). Diffusers fetches exactly those files from the Hub and nothing else beside them, so each
has to stand alone. `bundle_source` makes such a file: it inlines, in dependency order, every module of this package
that the class's module imports (directly or not), strips the package-internal imports and keeps the rest verbatim.

```py
>>> from fsdiff_diffusers.remote_code import bundle_source

>>> print(bundle_source("fsdiff_diffusers.models.clarity_mamba")[:300])
```
"""

import ast
import re
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .pipelines.remote_layout import REMOTE_CODE_MARK

PACKAGE = "fsdiff_diffusers"
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class StandIn:
    """
    A name a bundled module imports from a module the bundle leaves out, bound to another name instead.

    Args:
        name (`str`): The name the bundle binds (`FSDiffUNet2DModel`).
        value (`str`): What it is bound to (`ModelMixin`).
        import_line (`str`, *optional*): An import the value needs (`from diffusers import ModelMixin`).
    """

    name: str
    value: str
    import_line: str | None = None


@dataclass(frozen=True)
class Bundle:
    """
    One remote-code file: the package module whose classes it defines, and what it leaves out.

    Args:
        module (`str`): The package module (`fsdiff_diffusers.models.unet_fsdiff`).
        extra_modules (`tuple[str, ...]`): Package modules to inline although `module` does not import them (the
            modules that define the stand-ins' values).
        left_out (`Mapping[str, tuple[StandIn, ...]]`): Package modules not inlined, with a stand-in for each name the
            bundle imports from them; importing any other name from them is an error.
    """

    module: str
    extra_modules: tuple[str, ...] = ()
    left_out: Mapping[str, tuple[StandIn, ...]] = field(default_factory=dict)


MODEL_STAND_IN = "from diffusers import ModelMixin"

BUNDLES = {
    "pipeline_fsdiff": Bundle(
        module=f"{PACKAGE}.pipelines.pipeline_fsdiff",
        extra_modules=(f"{PACKAGE}.pipelines.remote_layout",),
        left_out={
            # The components' classes come from their own files; the pipeline only names them in annotations, which
            # Diffusers checks with isinstance after loading: any `ModelMixin` passes.
            f"{PACKAGE}.models.unet_fsdiff": (StandIn("FSDiffUNet2DModel", "ModelMixin", MODEL_STAND_IN),),
            f"{PACKAGE}.models.clarity_mamba": (StandIn("ClarityMambaEncoder", "ModelMixin", MODEL_STAND_IN),),
            # Loading shipped models by name, model cards (the package's template) and uploads with a card need the
            # installed package; remote code keeps the saving half (save_pretrained writes this layout again).
            f"{PACKAGE}.pipelines.hub": (StandIn("FSDiffHubMixin", "FSDiffRemoteCodeMixin"),),
        },
    ),
    "unet_fsdiff": Bundle(module=f"{PACKAGE}.models.unet_fsdiff"),
    "clarity_mamba": Bundle(module=f"{PACKAGE}.models.clarity_mamba"),
}
"""Remote-code files by module name (the file is `<name>.py`); the name is the last part of the package module's."""

_DIFFUSERS_IMPORT_PATTERNS = (
    # What diffusers' `dynamic_modules_utils` reads in a remote-code file: relative imports (files it then copies next
    # to it) and the top-level packages it checks for, in any line, docstrings included.
    re.compile(r"^\s*import\s+\.", re.MULTILINE),
    re.compile(r"^\s*from\s+\.", re.MULTILINE),
    re.compile(rf"^\s*(from|import)\s+{PACKAGE}\b", re.MULTILINE),
)


class BundleError(RuntimeError):
    """The package's source cannot be turned into a self-contained module (a name clash, an unsupported import)."""


def _module_path(module: str) -> Path:
    """The source file of package `module` (its `__init__.py` for a subpackage)."""
    relative = Path(*module.split(".")[1:])
    for path in (PACKAGE_DIR / relative.with_suffix(".py"), PACKAGE_DIR / relative / "__init__.py"):
        if path.is_file():
            return path
    raise BundleError(f"{module} has no source file under {PACKAGE_DIR}.")


def _is_package(module: str) -> bool:
    return _module_path(module).name == "__init__.py"


def _imported_module(module: str, node: ast.ImportFrom) -> str | None:
    """The package module an `ImportFrom` in `module` imports from, or None for an import from outside the package."""
    if node.level == 0:
        name = node.module or ""
        return name if name == PACKAGE or name.startswith(PACKAGE + ".") else None
    parts = module.split(".")
    base = parts if _is_package(module) else parts[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _internal_imports(module: str, tree: ast.Module) -> list[tuple[ast.stmt, str]]:
    """Every statement of `tree`, at any depth, that imports from the package, with the module it imports from."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name == PACKAGE or alias.name.startswith(PACKAGE + ".") for alias in node.names
        ):
            raise BundleError(f"{module}: `import {node.names[0].name}` is not supported; use `from ... import`.")
        if isinstance(node, ast.ImportFrom):
            target = _imported_module(module, node)
            if target is not None:
                if target != PACKAGE and not _module_path(target).is_file():
                    raise BundleError(f"{module} imports from {target}, which does not exist.")
                found.append((node, target))
    return found


def _dependency_order(bundle: Bundle) -> list[str]:
    """The package modules the bundle inlines, each after those it imports from."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(module: str) -> None:
        if module in order:
            return
        if module in visiting:
            raise BundleError(f"Circular import through {module}.")
        visiting.add(module)
        tree = ast.parse(_module_path(module).read_text(encoding="utf-8"))
        for node, target in _internal_imports(module, tree):
            if target in bundle.left_out:
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if _is_package(target) and any(
                    path.is_file() for path in (PACKAGE_DIR.joinpath(*submodule.split(".")[1:]).with_suffix(".py"),)
                ):
                    raise BundleError(f"{module} imports the module {submodule} as a name; import names from it.")
            visit(target)
        visiting.discard(module)
        order.append(module)

    for module in (*bundle.extra_modules, bundle.module):
        visit(module)
    return order


@dataclass
class _Inlined:
    """One package module made ready to be pasted into a bundle."""

    module: str
    body: str
    imports: list[str]
    names: set[str]


def _bound_names(node: ast.stmt) -> set[str]:
    """Top-level names a statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    return {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}


def _inline(module: str, bundle: Bundle) -> _Inlined:
    """`module`'s source without its docstring, `__all__` and package-internal imports; its other top-level imports
    are lifted out (into the bundle's header)."""
    source = _module_path(module).read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    replaced: dict[int, list[str]] = {}  # first line (0-based) -> replacement lines
    dropped: set[int] = set()

    def drop(node: ast.stmt, replacement: list[str] | None = None) -> None:
        start, end = node.lineno - 1, node.end_lineno
        dropped.update(range(start, end))
        if replacement:
            replaced[start] = replacement

    internal = {id(node): target for node, target in _internal_imports(module, tree)}
    imports, names = [], set()
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        if id(node) not in internal:
            continue
        target = internal[id(node)]
        indent = " " * node.col_offset
        aliases = []
        for alias in node.names:
            if target in bundle.left_out:
                stand_ins = {stand_in.name: stand_in for stand_in in bundle.left_out[target]}
                if alias.name not in stand_ins:
                    raise BundleError(
                        f"{module} imports {alias.name} from {target}, which the {bundle.module} bundle leaves out "
                        f"without a stand-in for it."
                    )
                stand_in = stand_ins[alias.name]
                if stand_in.import_line:
                    imports.append(stand_in.import_line)
                aliases.append(f"{indent}{alias.asname or alias.name} = {stand_in.value}")
            elif alias.asname and alias.asname != alias.name:
                aliases.append(f"{indent}{alias.asname} = {alias.name}")
        if id(node) not in top_level and not aliases:
            aliases = [f"{indent}pass"]
        drop(node, aliases)

    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            drop(node)  # the module docstring
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            drop(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in internal:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                raise BundleError(f"{module}: `from __future__` imports are not supported in bundled modules.")
            imports.append(ast.get_source_segment(source, node))
            drop(node)
        elif id(node) not in internal:
            names |= _bound_names(node)
        if isinstance(node, ast.ImportFrom) and id(node) in internal:
            names |= {alias.asname for alias in node.names if alias.asname and alias.asname != alias.name}

    kept = []
    for index, line in enumerate(lines):
        if index in replaced:
            kept.extend(replaced[index])
        if index not in dropped:
            kept.append(line)
    body = re.sub(r"\n{3,}", "\n\n\n", "\n".join(kept).strip("\n"))
    return _Inlined(module=module, body=body, imports=imports, names=names)


def _member_key(name: str) -> tuple[int, str]:
    """isort's order of imported names (ruff's `order-by-type`): constants, classes, then the rest."""
    bare = name.split(" as ")[0]
    kind = 0 if bare.isupper() and len(bare) > 1 else 1 if bare[:1].isupper() else 2
    return kind, bare.lower()


def _merged_imports(imports: list[str]) -> str:
    """
    The bundle's import block, laid out as isort (and `ruff check`'s I001) want it: the standard library, then
    third-party packages; in each, `import x` statements, then one `from x import a, b` per module.
    """
    plain: dict[bool, set[str]] = {True: set(), False: set()}
    names_from: dict[bool, dict[str, set[str]]] = {True: {}, False: {}}
    for statement in imports:
        node = ast.parse(statement).body[0]
        if isinstance(node, ast.Import):
            for alias in node.names:
                stdlib = alias.name.split(".")[0] in sys.stdlib_module_names
                plain[stdlib].add(alias.name + (f" as {alias.asname}" if alias.asname else ""))
        else:
            stdlib = node.module.split(".")[0] in sys.stdlib_module_names
            names_from[stdlib].setdefault(node.module, set()).update(
                alias.name + (f" as {alias.asname}" if alias.asname else "") for alias in node.names
            )
    sections = []
    for stdlib in (True, False):
        lines = [f"import {name}" for name in sorted(plain[stdlib], key=str.lower)]
        for module in sorted(names_from[stdlib], key=str.lower):
            members = sorted(names_from[stdlib][module], key=_member_key)
            line = f"from {module} import {', '.join(members)}"
            if len(line) > 120:
                line = f"from {module} import (\n" + "".join(f"    {name},\n" for name in members) + ")"
            lines.append(line)
        if lines:
            sections.append("\n".join(lines))
    return "\n\n".join(sections)


def bundle_source(name_or_module: str) -> str:
    """
    The self-contained source of one remote-code file.

    Args:
        name_or_module (`str`): A key of [`BUNDLES`] (`"unet_fsdiff"`) or the package module it bundles
            (`"fsdiff_diffusers.models.unet_fsdiff"`).

    Returns:
        `str`: Python source that imports only third-party packages (torch, diffusers, numpy, PIL, ...) and defines
        every name the bundled module's classes need.

    Raises:
        `BundleError`: when two inlined modules define the same top-level name, when a module imports a name the
        bundle leaves out without a stand-in, or when the result still names this package.
    """
    name = name_or_module.rsplit(".", 1)[-1]
    if name not in BUNDLES or name_or_module not in (name, BUNDLES[name].module):
        raise BundleError(f"No remote-code bundle for {name_or_module!r}; the bundles are {', '.join(BUNDLES)}.")
    bundle = BUNDLES[name]
    inlined = [_inline(module, bundle) for module in _dependency_order(bundle)]

    owners: dict[str, str] = {}
    for part in inlined:
        for bound in part.names:
            if bound in owners:
                raise BundleError(
                    f"{bound!r} is defined both in {owners[bound]} and in {part.module}: they cannot share the "
                    f"{bundle.module} bundle. Rename one (or make it private to a class)."
                )
            owners[bound] = part.module
    imported = {
        bound for part in inlined for statement in part.imports for bound in _bound_names(ast.parse(statement).body[0])
    }
    clashes = sorted(imported & set(owners))
    if clashes:
        raise BundleError(f"{', '.join(clashes)} of the {bundle.module} bundle are both imported and defined.")

    version_match = re.search(r'^__version__ = "([^"]+)"', (PACKAGE_DIR / "__init__.py").read_text(), re.MULTILINE)
    docstring = ast.get_docstring(ast.parse(_module_path(bundle.module).read_text(encoding="utf-8"))) or ""
    inlined_names = ", ".join(part.module for part in inlined[:-1]) or "nothing else"
    about = (
        f"{REMOTE_CODE_MARK} {version_match.group(1)} from {bundle.module}, with the package modules it imports "
        f"inlined ({inlined_names}). Do not edit: `save_pretrained` writes it again."
    )
    summary = docstring.splitlines()[0] if docstring else bundle.module
    header = f'"""{summary}\n\n' + "\n".join(textwrap.wrap(about, width=116, break_on_hyphens=False)) + '\n"""'
    imports = _merged_imports([statement for part in inlined for statement in part.imports])
    bodies = [f"# --- {part.module} ---\n\n{part.body}" for part in inlined if part.body.strip()]
    text = f"{header}\n\n{imports}\n\n" + "\n\n\n".join(bodies) + "\n"

    for pattern in _DIFFUSERS_IMPORT_PATTERNS:
        match = pattern.search(text)
        if match:
            raise BundleError(
                f"The {bundle.module} bundle still has the line {match.group(0).strip()!r}, which Diffusers' "
                "remote-code loader would read as an import of a file or of this package."
            )
    compile(text, f"{name}.py", "exec")
    return text
