"""`autoops.core` does no I/O, reads no wall clock, and imports no outside-world library.

The import-linter contract in pyproject.toml covers imports; this test covers the rest (clock,
files, printing, environment) and runs without import-linter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "autoops" / "core"

# Modules the core may not import, directly or through a submodule (`urllib.request`).
FORBIDDEN_MODULES = (
    "ray",
    "httpx",
    "prometheus_api_client",
    "sqlite3",
    "requests",
    "socket",
    "urllib",
    "subprocess",
    "autoops.adapters",
    "autoops.store",
    "autoops.runtime",
)

# Names the core may not touch: the wall clock and the process environment. Checked after
# resolving import aliases (`from time import monotonic as now` -> `time.monotonic`).
FORBIDDEN_NAMES = {
    "time.time": "reads the wall clock",
    "time.time_ns": "reads the wall clock",
    "time.monotonic": "reads the wall clock",
    "time.monotonic_ns": "reads the wall clock",
    "time.perf_counter": "reads the wall clock",
    "time.perf_counter_ns": "reads the wall clock",
    "datetime.datetime.now": "reads the wall clock",
    "datetime.datetime.utcnow": "reads the wall clock",
    "datetime.datetime.today": "reads the wall clock",
    "datetime.date.today": "reads the wall clock",
    # Written the usual way (`from datetime import datetime` is resolved above; these catch
    # code whose import the checker cannot see, e.g. a name passed in).
    "datetime.now": "reads the wall clock",
    "datetime.utcnow": "reads the wall clock",
    "date.today": "reads the wall clock",
    "os.environ": "reads the environment",
    "os.getenv": "reads the environment",
    "os.putenv": "writes the environment",
}

# Builtins the core may not call.
FORBIDDEN_BUILTIN_CALLS = {
    "open": "does file I/O",
    "print": "writes to stdout",
    "input": "reads stdin",
}

# Top-level packages that must not be in sys.modules after importing the whole core. The stdlib
# ones (socket, urllib, subprocess) are left to the AST check: numpy, pydantic and structlog
# import them, so their presence says nothing about the core.
FORBIDDEN_LOADED = (
    "ray",
    "httpx",
    "prometheus_api_client",
    "requests",
    "sqlite3",
    "autoops.adapters",
    "autoops.store",
    "autoops.runtime",
)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _is_forbidden_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES)


def _dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a Name/Attribute chain, None for anything else (calls, subscripts)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _resolve_relative(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def find_violations(source: str, path: str, package: str = "autoops.core") -> list[Violation]:
    """Every impure import, clock read, environment read and I/O builtin call in `source`."""
    tree = ast.parse(source, filename=path)
    found: list[Violation] = []
    aliases: dict[str, str] = {}  # local name -> fully qualified name

    def flag(node: ast.AST, message: str) -> None:
        found.append(Violation(path, getattr(node, "lineno", 0), message))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_forbidden_module(alias.name):
                    flag(node, f"imports {alias.name}")
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            module = _resolve_relative(node.module, node.level, package)
            if _is_forbidden_module(module):
                flag(node, f"imports from {module}")
                continue
            for alias in node.names:
                qualified = f"{module}.{alias.name}"
                if _is_forbidden_module(qualified):
                    flag(node, f"imports {qualified}")
                elif qualified in FORBIDDEN_NAMES:
                    flag(node, f"imports {qualified}: {FORBIDDEN_NAMES[qualified]}")
                aliases[alias.asname or alias.name] = qualified

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in FORBIDDEN_BUILTIN_CALLS and name not in aliases:
                flag(node, f"calls {name}(): {FORBIDDEN_BUILTIN_CALLS[name]}")
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            raw = _dotted(node)
            if raw is None:
                continue
            head, _, rest = raw.partition(".")
            resolved = f"{aliases.get(head, head)}.{rest}" if rest else raw
            for name in dict.fromkeys((resolved, raw)):
                if name in FORBIDDEN_NAMES:
                    flag(node, f"uses {name}: {FORBIDDEN_NAMES[name]}")
                    break
    return sorted(found, key=lambda v: (v.path, v.line, v.message))


def _module_package(path: Path) -> str:
    """The package a module's relative imports resolve against: its folder, dotted."""
    return ".".join(path.relative_to(REPO).parts[:-1])


def _core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_core_package_exists() -> None:
    assert (CORE / "__init__.py").is_file()


def test_core_sources_do_no_io_read_no_clock_and_import_no_outside_world() -> None:
    violations: list[Violation] = []
    for path in _core_files():
        source = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(REPO))
        violations += find_violations(source, rel, package=_module_package(path))
    assert not violations, "autoops.core must stay pure:\n" + "\n".join(map(str, violations))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("import ray\n", "imports ray", id="import"),
        pytest.param("import urllib.request as u\n", "imports urllib.request", id="submodule"),
        pytest.param("from httpx import Client\n", "imports from httpx", id="from-import"),
        pytest.param("from sqlite3 import connect\n", "imports from sqlite3", id="sqlite"),
        pytest.param("import subprocess\n", "imports subprocess", id="subprocess"),
        pytest.param("from autoops.store import db\n", "imports from autoops.store", id="store"),
        pytest.param("from autoops import adapters\n", "imports autoops.adapters", id="pkg-attr"),
        pytest.param("from ..runtime import loop\n", "imports from autoops.runtime", id="relative"),
        pytest.param("import time\nx = time.time()\n", "uses time.time", id="time.time"),
        pytest.param("import time as t\nx = t.monotonic()\n", "uses time.monotonic", id="alias"),
        pytest.param(
            "import time\nclock = time.perf_counter\n",
            "uses time.perf_counter",
            id="clock-as-value",
        ),
        pytest.param("from time import monotonic\n", "imports time.monotonic", id="from-time"),
        pytest.param(
            "from datetime import datetime\nn = datetime.now()\n",
            "uses datetime.datetime.now",
            id="datetime.now",
        ),
        pytest.param(
            "import datetime\nn = datetime.datetime.utcnow()\n",
            "uses datetime.datetime.utcnow",
            id="datetime.utcnow",
        ),
        pytest.param(
            "from datetime import date\nd = date.today()\n",
            "uses datetime.date.today",
            id="date.today",
        ),
        pytest.param(
            "def f(datetime):\n    return datetime.now()\n",
            "uses datetime.now",
            id="unresolved-datetime",
        ),
        pytest.param("f = open('x')\n", "calls open()", id="open"),
        pytest.param("print('hi')\n", "calls print()", id="print"),
        pytest.param("import os\nk = os.environ.get('K')\n", "uses os.environ", id="environ"),
        pytest.param("import os\nk = os.environ['K']\n", "uses os.environ", id="environ-item"),
        pytest.param("from os import environ\n", "imports os.environ", id="from-os-environ"),
        pytest.param("import os\nk = os.getenv('K')\n", "uses os.getenv", id="getenv"),
    ],
)
def test_checker_catches_a_violation(source: str, expected: str) -> None:
    (violation,) = find_violations(source, "autoops/core/x.py", package="autoops.core")
    assert violation.message.startswith(expected), violation
    assert str(violation).startswith("autoops/core/x.py:")


def test_checker_reports_file_and_line() -> None:
    source = textwrap.dedent(
        """\
        import math

        def decide(ctx):
            return ctx.now - 1

        def bad():
            import time
            return time.time()
        """
    )
    assert [str(v) for v in find_violations(source, "autoops/core/decide.py")] == [
        "autoops/core/decide.py:8: uses time.time: reads the wall clock"
    ]


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("import math\nx = math.sqrt(2)\n", id="math"),
        pytest.param("from dataclasses import dataclass, replace\n", id="dataclasses"),
        pytest.param("from datetime import timedelta\nd = timedelta(seconds=5)\n", id="timedelta"),
        pytest.param("def f(ctx):\n    return ctx.now\n", id="time-from-ctx"),
        pytest.param("def f(state):\n    return state.open\n", id="attribute-named-open"),
        pytest.param("from autoops.model import Snapshot\n", id="model"),
        pytest.param("from .state import Phase\n", id="relative-sibling"),
    ],
)
def test_checker_accepts_pure_code(source: str) -> None:
    assert find_violations(source, "autoops/core/x.py") == []


def test_importing_the_whole_core_loads_no_outside_world_package() -> None:
    code = textwrap.dedent(
        f"""\
        import importlib, pkgutil, sys
        import autoops.core as core
        for info in pkgutil.walk_packages(core.__path__, "autoops.core."):
            importlib.import_module(info.name)
        forbidden = {FORBIDDEN_LOADED!r}
        loaded = sorted(
            m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        print("\\n".join(loaded))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", "autoops.core loads:\n" + proc.stdout
