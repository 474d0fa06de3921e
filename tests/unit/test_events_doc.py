"""docs/events.md documents every event the code can write, with every field, and nothing
that the code no longer writes (names found in the source: tests/unit/eventnames.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from eventnames import ROOT, event_fields  # noqa: E402

DOC = ROOT / "docs" / "events.md"
TICKED = re.compile(r"`([a-z_0-9]+)`")


def documented() -> dict[str, set[str]]:
    """event name -> the fields its table rows name."""
    out: dict[str, set[str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 3 or cells[0] in ("event", "field") or set(cells[0]) <= {"-"}:
            continue
        names = TICKED.findall(cells[0])
        for name in names:
            out.setdefault(name, set()).update(TICKED.findall(cells[1]))
    return out


def test_the_source_scan_still_finds_the_events():
    # A refactor that hides the names from the scan (e.g. typed event classes) must update
    # tests/unit/eventnames.py, not silently pass: these are written by every run.
    found = event_fields()
    assert len(found) >= 50
    assert {"bu_sent", "ba_sent", "cn_registered", "home_registered", "coa_usable", "drop",
            "durable_write", "packet_sent", "rekey_required"} <= set(found)


def test_every_event_of_the_code_is_documented_with_its_fields():
    doc = documented()
    missing = sorted(set(event_fields()) - set(doc))
    assert not missing, f"events written by the code but not in docs/events.md: {missing}"
    for name, fields in event_fields().items():
        assert fields <= doc[name], f"{name}: fields not in docs/events.md: {sorted(fields - doc[name])}"


def test_no_documented_event_is_gone_from_the_code():
    stale = sorted(set(documented()) - set(event_fields()))
    assert not stale, f"docs/events.md documents events the code no longer writes: {stale}"
