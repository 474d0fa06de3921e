"""testbed/mip6 holds only pure code: no files, sockets, processes, threads or clocks.

The rule, precisely (docs/architecture.md):

1. Every module of testbed/mip6 imports only the modules in ALLOWED (the standard library's
   pure data, parsing and hashing modules; PyYAML, which only ever parses a string there;
   ``secrets``, the OS's random number generator, which engines take as their default
   ``rng``), ``testbed.errors`` and other testbed/mip6 modules. An import inside a function
   counts the same; ``importlib`` and ``__import__`` are not allowed, so nothing else can
   come in by a side door.
2. No module calls a builtin that does I/O or runs code: open, print, input, breakpoint,
   exec, eval, compile, __import__, exit, quit.
3. Importing every module of testbed/mip6 in a fresh interpreter loads none of the modules
   that do I/O (FORBIDDEN_LOADED): a check on what the allowed modules import in turn.

So reading key files and the sequence store live in testbed/storage, the agent carries out
the engines' Persist and Send actions, and time comes in as an argument.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "testbed" / "mip6"

ALLOWED = {
    "__future__", "abc", "array", "collections", "collections.abc", "dataclasses", "enum", "functools",
    "hashlib", "heapq", "hmac", "ipaddress", "itertools", "math", "operator", "re", "secrets", "struct",
    "typing", "yaml",
    "testbed.errors",
}
FORBIDDEN_CALLS = {"open", "print", "input", "breakpoint", "exec", "eval", "compile", "__import__", "exit", "quit"}
FORBIDDEN_LOADED = [
    "socket", "sqlite3", "subprocess", "threading", "asyncio", "selectors", "select", "multiprocessing",
    "shutil", "tempfile", "pathlib", "logging", "ssl", "urllib.request", "http.client", "fcntl", "mmap",
]


def modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 15  # the walk finds the package
    return found


def imports_of(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out.append("." * node.level + (node.module or ""))
            else:
                out.append(node.module)
    return out


def allowed(name: str) -> bool:
    return name in ALLOWED or name == "testbed.mip6" or name.startswith("testbed.mip6.")


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_every_mip6_module_imports_only_pure_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    bad = [name for name in imports_of(tree) if not allowed(name)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: testbed/mip6 must stay sans-I/O"


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_no_mip6_module_calls_an_io_builtin(path):
    tree = ast.parse(path.read_text(), str(path))
    calls = [node.func.id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS]
    assert not calls, f"{path.relative_to(ROOT)} calls {calls}"


def test_the_rule_catches_what_it_is_for():
    """The checks above would fail on the imports and calls they are meant to keep out."""
    tree = ast.parse("import os\nfrom time import monotonic_ns\nimport sqlite3, socket\n"
                     "def f():\n    import subprocess\n    from . import x\n    return open('k')\n")
    assert [n for n in imports_of(tree) if not allowed(n)] == ["os", "time", "sqlite3", "socket", "subprocess", "."]
    assert [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)] == ["open"]
    assert allowed("testbed.mip6.cn") and not allowed("testbed.storage.sequences") and not allowed("testbed.agent")


def test_importing_all_of_mip6_loads_no_io_module():
    code = (
        "import sys, pkgutil, importlib\n"
        "sys.path[:0] = sys.argv[1:]\n"
        "import testbed.mip6\n"
        "for m in pkgutil.iter_modules(testbed.mip6.__path__):\n"
        "    importlib.import_module('testbed.mip6.' + m.name)\n"
        f"print(','.join(n for n in {FORBIDDEN_LOADED!r} if n in sys.modules))\n"
    )
    paths = [str(ROOT)] + [p for p in sys.path if p.endswith("site-packages")]
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, *paths], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing testbed/mip6 loads {out.stdout.strip()}"
