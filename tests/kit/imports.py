"""Which modules a piece of the product loads, and the CLI as a host without an extra sees it.

Each check runs in a fresh interpreter: this test process has long since imported everything.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.kit.cli import handoff_env

_BLOCKER = """
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def _python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=handoff_env(),
        timeout=timeout,
        check=False,
    )


def modules_after(code: str) -> set[str]:
    """The names in `sys.modules` once `code` has run in a fresh interpreter (packages and their
    modules alike: `sqlalchemy` and `sqlalchemy.engine`)."""
    done = _python(f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))")
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def handoff_modules_after(argv: Sequence[str]) -> set[str]:
    """`modules_after` running `handoff ARGV` in process through its entry point."""
    return modules_after(f"from handoff.cli.main import main\nassert main({list(argv)!r}) == 0")


def run_without(blocked: Sequence[str], argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`handoff ARGV` where the modules `blocked` cannot be imported, as on a host whose install
    lacks the extra providing them: an import hook stands in for uninstalling them, because a
    venv per extra cannot be built here without the package index."""
    code = (
        f"BLOCKED = {set(blocked)!r}\n{_BLOCKER}\n"
        f"import sys\nfrom handoff.cli.main import main\nsys.exit(main({list(argv)!r}))"
    )
    return _python(code)


def package_imports(package: Path) -> dict[str, set[str]]:
    """Which parts of the package (`handoff.X`: a subpackage or a top-level module) import which
    others, read from every `import` in the source, at the top of a module or inside a function."""
    graph: dict[str, set[str]] = {}
    name = package.name
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts == ("__init__",):
            continue
        importer = parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                top, _, rest = module.partition(".")
                imported = rest.partition(".")[0]
                if top == name and imported and imported != importer:
                    graph.setdefault(importer, set()).add(imported)
    return graph


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each cycle as a path that returns to its start, found by depth-first search (empty if none)."""
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for following in sorted(graph.get(node, ())):
            visit(following, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return cycles
