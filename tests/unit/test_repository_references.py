"""The repository stands on its own: no file points at notes that are not in it, and every
docs/ file the code cites exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|\b(mip6|design|platform)\.md\b")
CITED = re.compile(r"\bdocs/([A-Za-z0-9_.-]+\.md)\b")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def _texts():
    for path in _tracked_files():
        try:
            yield path, path.read_text()
        except (UnicodeDecodeError, OSError):
            continue


def test_no_reference_to_notes_outside_the_repository():
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
            for p, text in _texts() for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert hits == [], "references to files outside the repository:\n" + "\n".join(hits)


def test_every_cited_doc_exists():
    missing = sorted({f"{p.relative_to(ROOT)} cites docs/{m.group(1)}"
                      for p, text in _texts() for m in CITED.finditer(text) if not (ROOT / "docs" / m.group(1)).is_file()})
    assert missing == []
