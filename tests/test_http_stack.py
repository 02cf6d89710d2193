"""One HTTP client for every fetch: only ``fetch.py`` and ``transport.py`` speak HTTP.

Every other module fetches through ``archiver.net.fetch.Fetcher``, so remap, limits,
retries, size caps, the User-Agent, timeouts and the address guard apply to all
of them. This reads each module's imports (as written, without importing it):
an HTTP library imported anywhere else at run time fails here. An import under
``if TYPE_CHECKING:`` (for a type hint) runs never and is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import archiver

PACKAGE = Path(archiver.__file__).parent
#: The modules that own the HTTP stack.
HTTP_MODULES = {"net/fetch.py", "net/transport.py"}
#: Libraries that open connections or speak HTTP themselves.
HTTP_LIBRARIES = {
    "aiohttp",
    "ftplib",
    "h11",
    "h2",
    "http.client",
    "httpcore",
    "httptools",
    "httpx",
    "pycurl",
    "requests",
    "urllib.request",
    "urllib3",
}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def package_of(path: Path) -> str:
    """The package a module file's relative imports start from (``archiver.net``)."""
    parts = list(path.resolve().relative_to(PACKAGE.resolve().parent).with_suffix("").parts)
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


def runtime_imports(tree: ast.AST, package: str = "") -> list[tuple[int, str]]:
    """(line, module) of every import that runs, i.e. not under ``if TYPE_CHECKING:``.

    A relative import is resolved against ``package`` (``package_of``); without one it
    would name nothing, so it is kept as written (``.cli``) and matches no rule."""
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(
                    [*(base if package else ["." * node.level]), *filter(None, [module])]
                )
            if module:
                out.append((node.lineno, module))
                out.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _is_http(module: str) -> bool:
    return any(module == lib or module.startswith(lib + ".") for lib in HTTP_LIBRARIES)


def test_only_fetch_and_transport_import_an_http_library() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in HTTP_MODULES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [
            f"{rel}:{line} imports {m}" for line, m in runtime_imports(tree) if _is_http(m)
        ]
    assert offenders == []


def test_dynamic_imports_of_http_libraries_are_caught_too() -> None:
    """``importlib.import_module("httpx")`` or ``__import__`` would dodge the check above."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in HTTP_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and _is_http(node.args[0].value)
                and ast.unparse(node.func)
                in ("__import__", "importlib.import_module", "import_module")
            ):
                offenders.append(f"{rel}:{node.lineno} imports {node.args[0].value}")
    assert offenders == []


def test_the_check_sees_what_it_must() -> None:
    """The checker itself: a runtime import is found, a TYPE_CHECKING one is not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import json\n"
        "if TYPE_CHECKING:\n"
        "    import httpx\n"
        "else:\n"
        "    import h11\n"
        "def f():\n"
        "    from urllib.request import urlopen\n"
        "    import http.client as hc\n"
    )
    found = [m for _, m in runtime_imports(ast.parse(source)) if _is_http(m)]
    assert found == ["h11", "urllib.request", "urllib.request.urlopen", "http.client"]
