"""The command line's shape, kept by reading its source: imports go one way, no module
reaches into another's private names, errors are caught in one place, and every
command is added to the group by name."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import click

import archiver
import archiver.errors
from archiver.cli import cli

PACKAGE = Path(archiver.__file__).resolve().parent
CLI = PACKAGE / "cli"
#: The modules that hold commands; ``app`` adds theirs to the group.
COMMAND_MODULES = ("crawl", "extract", "report", "store")


def _modules() -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(CLI.glob("*.py"))
    }


def _cli_imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(cli module imported, names taken from it) for each import of a cli module."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "archiver.cli":  # from archiver.cli import crawl, cli ...
                for alias in node.names:
                    module = alias.name if (CLI / f"{alias.name}.py").exists() else "__init__"
                    found.append((module, [] if module == alias.name else [alias.name]))
            elif node.module.startswith("archiver.cli."):
                found.append((node.module.split(".")[2], [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"relative import in archiver/cli: {ast.unparse(node)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("archiver.cli."):
                    found.append((alias.name.split(".")[2], []))
    return found


def test_no_cli_module_imports_another_modules_private_names() -> None:
    private = [
        f"{name} imports {module}.{taken}"
        for name, tree in _modules().items()
        for module, names in _cli_imports(tree)
        for taken in names
        if taken.startswith("_")
    ]
    # Nor reaches them through a module it imported: crawl._run, store._open ...
    modules = set(_modules())
    through = [
        f"{name} uses {ast.unparse(node)}"
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
    ]
    assert private + through == []


def test_cli_imports_go_one_way() -> None:
    graph = {
        name: {module for module, _ in _cli_imports(tree) if module != name}
        for name, tree in _modules().items()
    }
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle
    for name in (*COMMAND_MODULES, "options", "exits"):
        assert graph[name] <= {"options"}, (name, graph[name])  # never app, nor each other


def _catches(handler: ast.ExceptHandler) -> set[str]:
    if handler.type is None:
        return {"BaseException"}
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return {ast.unparse(t).rsplit(".", 1)[-1] for t in types}


def test_only_exits_catches_errors_to_word_them() -> None:
    """A command may clean up on an error and re-raise it; only ``exits`` ends it."""
    library = set(archiver.errors.__all__)
    wording = [
        f"{name}.py:{handler.lineno}: except {', '.join(sorted(_catches(handler)))}"
        for name, tree in _modules().items()
        if name != "exits"
        for handler in ast.walk(tree)
        if isinstance(handler, ast.ExceptHandler)
        and _catches(handler) & (library | {"Exception", "BaseException"})
        and not isinstance(handler.body[-1], ast.Raise)
    ]
    assert wording == []


def test_every_command_is_added_to_the_group() -> None:
    import importlib

    defined = {
        obj.name: obj
        for module in COMMAND_MODULES
        for obj in vars(importlib.import_module(f"archiver.cli.{module}")).values()
        if isinstance(obj, click.Command)
    }
    assert defined == cli.commands
    assert {p.stem for p in CLI.glob("*.py")} == {
        "__init__",
        "app",
        "exits",
        "options",
        *COMMAND_MODULES,
    }
