"""The load figures as tables: rich on a terminal, plain aligned text otherwise."""

from __future__ import annotations

import sys
from typing import IO

COLUMNS = (  # (header, row key, format)
    ("mobiles", "mobiles", "{:,}"),
    ("start-up s", "startup_s", "{:.2f}"),
    ("bind /s", "bind_per_s", "{:,.0f}"),
    ("moves /s", "moves_per_s", "{:,.0f}"),
    ("engine-bound /s", "engine_bound_per_s", "{:,.0f}"),
    ("moves/bound", "rate_ratio", "{:.2f}"),
    ("BA median ms", "closed_ba_median_ms", "{:.2f}"),
    ("BA p99 ms", "closed_ba_p99_ms", "{:.2f}"),
    ("open offered /s", "open_offered_per_s", "{:,.0f}"),
    ("open achieved /s", "open_achieved_per_s", "{:,.0f}"),
    ("open/bound", "open_ratio", "{:.2f}"),
    ("open median ms", "open_ba_median_ms", "{:.2f}"),
    ("open p99 ms", "open_ba_p99_ms", "{:.2f}"),
    ("lost", "lost", "{:,}"),
    ("B / binding", "memory_per_binding_bytes", "{:,}"),
    ("CPU us / BU", "cpu_per_bu_us", "{:.0f}"),
    ("CPU/engine", "cpu_ratio", "{:.1f}"),
)


def cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def title(summary: dict) -> str:
    rows = summary["rows"]
    if not rows:
        return "correspondent under load"
    first = rows[0]
    return (f"Correspondent agent under load: persistence {first['persistence']}, sequence store on "
            f"{first['state_filesystem']}")


def plain(summary: dict) -> str:
    headers = [c[0] for c in COLUMNS]
    body = [[cell(r, key, fmt) for _, key, fmt in COLUMNS] for r in summary["rows"]]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = [title(summary), "  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def notes(summary: dict) -> list[str]:
    out = []
    for row, run in zip(summary["rows"], summary["runs"]):
        m = run.get("machine", {})
        steal = sum((m.get("steal_s") or {}).values())
        others = ", ".join(f"{o['comm']} {o['cpu_s']} s" for o in m.get("other_busy", [])) or "nothing"
        turn = (run.get("agent_turnaround") or {}).get("receive_to_ba") or {}
        moves = next((p for p in run.get("phases", []) if p["phase"] == "moves"), {})
        opened = next((p for p in run.get("phases", []) if p["phase"] == "open"), None)
        # A mobile that moves again before its binding ends gives it up (superseded): at a high
        # offered rate and few mobiles, a return-routability exchange is often overtaken so.
        superseded = (f"open loop: {opened['superseded']:,} of {opened['jobs']:,} bindings given up by "
                      f"their mobile moving again first; " if opened and opened.get("superseded") else "")
        out.append(
            f"N={row['mobiles']:,}: {row['precomputed']:,} precomputed + {row['rr']:,} return routability; "
            f"{run.get('moves')} round(s) of moves; engine {row['engine_us_per_binding']} us/binding; "
            f"durable write {row['durable_write_median_us']} us; "
            f"agent receive-to-BA median {turn.get('median_ms')} ms p99 {turn.get('p99_ms')} ms; "
            f"load node busy {moves.get('load_node_cpu_share')} of the moves phase; {superseded}"
            f"none lost: {'yes' if row['none_lost'] else 'NO'}, moves/bound >= 0.5: "
            f"{'yes' if row['rate_target_met'] else 'NO'}; machine: load {m.get('loadavg_1min_before')}"
            f"->{m.get('loadavg_1min_after')}, steal {steal:.2f} s in {m.get('seconds')} s, "
            f"CPU pressure {m.get('cpu_pressure_some')}, others busy: {others}")
    return out


def print_summary(summary: dict, stream: IO[str] | None = None) -> None:
    stream = stream or sys.stdout
    if stream.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title(summary))
        for header, _, _ in COLUMNS:
            table.add_column(header, justify="right")
        for row in summary["rows"]:
            table.add_row(*(cell(row, key, fmt) for _, key, fmt in COLUMNS))
        console = Console(file=stream)
        console.print(table)
        for line in notes(summary):
            console.print(line, highlight=False)
    else:
        print(plain(summary), file=stream)
        for line in notes(summary):
            print(line, file=stream)
