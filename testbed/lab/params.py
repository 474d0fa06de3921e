"""Typed, validated parameters of topologies and labs (``--param name=value``).

A parameter has a kind that parses a string (from the command line, or from Mininet's
``--topo name,key=value``) or a Python value:

- ``delay``: one-way delay in milliseconds: ``20ms``, ``20`` (ms), ``500us``, ``0.02s``.
- ``interval``: seconds: ``0.05``, ``0.05s``, ``50ms``.
- ``int``: an integer within ``minimum..maximum``.
- ``choice``: one of ``choices``.

Bad input raises ConfigError with one line naming the parameter and what is wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from testbed.errors import ConfigError

_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")
_MS_PER_UNIT = {"": 1.0, "ms": 1.0, "us": 1e-3, "s": 1000.0}
_S_PER_UNIT = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}

MAX_DELAY_MS = 60_000.0


def _number_with_unit(value: Any, units: Mapping[str, float], what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(what)  # noqa: TRY004 - callers turn ValueError into a ConfigError
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _NUMBER_UNIT.match(str(value))
        if not match or match.group(2) not in units:
            raise ValueError(what)
        number = float(match.group(1)) * units[match.group(2)]
    if not math.isfinite(number) or number < 0:
        raise ValueError(what)
    return number


def parse_delay_ms(value: Any) -> float:
    """``'20ms'``, ``'500us'``, ``'0.02s'``, ``20`` -> 20.0 (milliseconds). Raises ValueError."""
    ms = _number_with_unit(value, _MS_PER_UNIT, "delay")
    if ms > MAX_DELAY_MS:
        raise ValueError("delay")
    return ms


def format_delay(ms: float) -> str:
    """20.0 -> ``'20ms'`` (Mininet's TCLink understands this form)."""
    return f"{ms:g}ms"


@dataclass(frozen=True)
class Param:
    """One named parameter: kind, default and a help line."""

    kind: str  # "delay" | "interval" | "int" | "choice"
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, name: str, value: Any, where: str) -> Any:
        """The typed value of ``value`` for parameter ``name``, or ConfigError."""
        if value is None:
            return None
        hint = {"delay": "a one-way delay such as 20ms, 500us or 0.02s",
                "interval": "a time interval such as 0.05 (seconds) or 50ms",
                "int": "an integer",
                "choice": "one of " + ", ".join(self.choices)}[self.kind]
        try:
            if self.kind == "delay":
                result: Any = parse_delay_ms(value)
            elif self.kind == "interval":
                result = _number_with_unit(value, _S_PER_UNIT, "interval")
            elif self.kind == "int":
                if isinstance(value, (bool, float)):
                    raise ValueError(hint)
                result = int(str(value).strip(), 10)
            else:
                result = str(value).strip()
                if result not in self.choices:
                    raise ValueError(hint)
        except ValueError:
            raise ConfigError(f"{where}: {name}={value!r} is not {hint}") from None
        if self.minimum is not None and result < self.minimum:
            raise ConfigError(f"{where}: {name}={value!r} is below the minimum {self.minimum:g}")
        if self.maximum is not None and result > self.maximum:
            raise ConfigError(f"{where}: {name}={value!r} is above the maximum {self.maximum:g}")
        return result


def parse_params(specs: Mapping[str, Param], raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Defaults of ``specs`` updated with the parsed ``raw`` values; unknown names are refused."""
    unknown = sorted(set(raw) - set(specs))
    if unknown:
        raise ConfigError(f"{where}: unknown parameter {unknown[0]!r} "
                          f"(known: {', '.join(sorted(specs))})")
    values = {name: spec.default for name, spec in specs.items()}
    for name, value in raw.items():
        values[name] = specs[name].parse(name, value, where)
    return values


def parse_assignments(items: list[str] | None, where: str = "--param") -> dict[str, str]:
    """``['a=1', 'b=2ms']`` -> ``{'a': '1', 'b': '2ms'}``; a malformed item raises ConfigError."""
    result: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise ConfigError(f"{where} {item!r}: expected NAME=VALUE")
        if name in result:
            raise ConfigError(f"{where} {item!r}: {name} given twice")
        result[name] = value.strip()
    return result
