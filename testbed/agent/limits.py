"""Process limits an agent raises for itself at start-up.

The agents' sequence store keeps one file descriptor open per key (one per precomputed peer
that has sent a BU), so a correspondent of 10,000 mobile nodes holds about 10,000 files
open. Many systems start processes with a soft limit of 1,024 open files and a much higher
hard limit; the soft limit is raised to the hard one, which any process may do.
"""

from __future__ import annotations

import resource


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # left as it was: the store then names the file it could not open (EMFILE)
    return soft
