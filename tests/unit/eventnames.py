"""The event names (and their fields) the code can write into an event log, found in the
source by its syntax tree: calls ``_event(now, NAME, ...)``, ``_drop(now, ...)`` (event
``drop``), ``log.event(t, NAME, ...)`` / ``self._log(t, NAME, ...)`` (the agents), ``Event(t,
node, NAME, ...)``, ``*_EVENT`` constants, and event classes (``@event_class("name")``, or a
class with a string ``NAME``/``name``/``EVENT``/``event`` attribute: its annotated
attributes, its bases' included, are the fields). NAME may be a string, a variable assigned strings in the same function,
or an ``*_EVENT`` constant. Used by tests/unit/test_events_doc.py to keep docs/events.md whole.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("testbed/mip6", "testbed/agent")
CALLS = {"_event": 1, "event": 1, "_log": 1}  # function name -> index of the name argument
CLASS_NAME_ATTRS = ("NAME", "name", "EVENT", "event")
COMMON_FIELDS = {"t_ns", "node", "event", "name"}  # every event's, documented once


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _assigned(func: ast.AST, name: str) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(func):
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets):
            out |= _strings(n.value)
    return out


def _dict_keys(func: ast.AST, name: str) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(func):
        if (isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
                and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name) and n.value.func.id == "dict"):
            out |= {k.arg for k in n.value.keywords if k.arg}
    return out


def event_fields() -> dict[str, set[str]]:
    """event name -> the field names passed with it anywhere."""
    found: dict[str, set[str]] = {}
    constants: dict[str, set[str]] = {}
    trees = []
    for base in SOURCES:
        for path in sorted((ROOT / base).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            trees.append(tree)
            for n in ast.walk(tree):
                if isinstance(n, ast.Assign):
                    for t in n.targets:
                        if isinstance(t, ast.Name) and t.id.endswith("_EVENT"):
                            if isinstance(n.value, ast.Constant) and isinstance(n.value.value, str):
                                constants.setdefault(t.id, set()).add(n.value.value)
                                found.setdefault(n.value.value, set())
    classes = {n.name: n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}

    def annotated(cls: ast.ClassDef, seen: frozenset = frozenset()) -> set[str]:
        """The annotated attributes of ``cls`` and of its bases defined in the sources."""
        out = set()
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in classes and base.id not in seen:
                out |= annotated(classes[base.id], seen | {cls.name})
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) \
                    and not stmt.target.id.startswith("_") and "ClassVar" not in ast.unparse(stmt.annotation):
                out.add(stmt.target.id)
        return out

    for cls in classes.values():  # @event_class("name") classes: their annotated attributes are the fields
        for deco in cls.decorator_list:
            if isinstance(deco, ast.Call) and deco.args and isinstance(deco.args[0], ast.Constant) \
                    and isinstance(deco.args[0].value, str) and "event" in ast.unparse(deco.func).lower():
                found.setdefault(deco.args[0].value, set()).update(annotated(cls) - COMMON_FIELDS)
    for tree in trees:  # event classes: a string NAME/name/EVENT/event, the annotated attributes as fields
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            names, fields = set(), set()
            for stmt in cls.body:
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else \
                    stmt.target if isinstance(stmt, ast.AnnAssign) else None
                if not isinstance(target, ast.Name):
                    continue
                value = stmt.value
                if target.id in CLASS_NAME_ATTRS and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    names.add(value.value)
                elif isinstance(stmt, ast.AnnAssign) and not target.id.startswith("_") \
                        and "ClassVar" not in ast.unparse(stmt.annotation):
                    fields.add(target.id)
            for name in names:
                found.setdefault(name, set()).update(fields - COMMON_FIELDS)
    for tree in trees:
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for func in functions:
            for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
                f = call.func
                fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
                keywords = {k.arg for k in call.keywords if k.arg}
                for k in call.keywords:  # **fields, fields = dict(name=..., ...) in the same function
                    if k.arg is None and isinstance(k.value, ast.Name):
                        keywords |= _dict_keys(func, k.value.id)
                if fname == "_drop":
                    found.setdefault("drop", set()).update(keywords | {"reason"})
                    continue
                index = 2 if fname == "Event" else CALLS.get(fname or "")
                if index is None or len(call.args) <= index:
                    continue
                arg = call.args[index]
                names: set[str] = set()
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names = {arg.value}
                elif isinstance(arg, ast.Name):
                    names = _assigned(func, arg.id) or constants.get(arg.id, set())
                elif isinstance(arg, ast.IfExp):
                    names = _strings(arg)
                elif isinstance(arg, ast.Attribute) and arg.attr in constants:
                    names = constants[arg.attr]
                for name in names:
                    found.setdefault(name, set()).update(keywords)
    found.pop("", None)
    return found
