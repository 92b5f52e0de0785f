"""Imports go down the layers only: commands > tasks > eval, viz > data > models, sim.

Every module under ``vidgen/`` is parsed (no import runs), and every ``import`` in it, at the
top or inside a function, is checked: a module may import its own layer or a lower one, and
only the commands import ``data_prep``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vidgen"
# Higher layers may import lower ones; packages of one layer may import each other.
LAYERS = {"cli": 4, "tasks": 3, "eval": 2, "viz": 2, "data": 1, "models": 0, "sim": 0}
# Top-level modules: loading (and vidgen.load, which calls it) rebuilds tasks and models.
MODULE_LAYERS = {"vidgen": 3.5, "vidgen.loading": 3.5}
# Importable from anywhere: the package itself (its __version__), the error type, the configs.
SHARED = {"vidgen", "vidgen.errors", "vidgen.configs"}
# (importer, imported): an import that breaks the order today, each with its reason.
ALLOWED: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> float | None:
    """The layer of a vidgen module; None for one that belongs to no layer."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS[parts[1]]
    return MODULE_LAYERS.get(".".join(parts[:2]))


def imported(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Every module name ``tree`` imports; ``from X import name`` counts ``X.name`` as well,
    since the name may be a submodule; relative imports are resolved against ``module``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*package, base] if base else package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def imports_by_module() -> dict[str, set[str]]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        modules[name] = imported(tree, name, path.name == "__init__.py")
    return modules


def test_every_module_has_a_layer():
    modules = imports_by_module()
    assert "vidgen.data.datamodule" in modules and "vidgen.cli.train" in modules
    unplaced = [m for m in modules if m not in SHARED and layer(m) is None]
    assert not unplaced, f"give these modules a layer in tests/test_layers.py: {unplaced}"


def test_only_the_commands_import_data_prep():
    offenders = [
        f"{module} imports {name}"
        for module, names in imports_by_module().items()
        if not module.startswith("vidgen.cli")
        for name in names
        if name.split(".")[0] == "data_prep"
    ]
    assert not offenders, offenders


def test_no_layer_imports_a_higher_one():
    offenders = []
    for module, names in imports_by_module().items():
        own = layer(module)
        own = -1 if own is None else own  # a shared module imports no layer at all
        for name in names:
            if name.split(".")[0] != "vidgen" or name in SHARED or (module, name) in ALLOWED:
                continue
            target = layer(name)  # None: a name, not a module (``from vidgen import __version__``)
            if target is not None and target > own:
                offenders.append(f"{module} imports {name}")
    assert not offenders, offenders
