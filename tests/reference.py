"""Where the team's shared reference material (IG samples, predecessors' CRDs) lives.

The workspace keeps `shared/` beside the checkout (`../shared`), and CI clones main beside it
the same way; `/work/shared` is the workspace's fixed location, for checkouts made elsewhere.
"""

from __future__ import annotations

from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = (_REPO.parent / "shared" / "reference", Path("/work/shared/reference"))

#: The first candidate that exists (else the first, so a missing file names where it looked).
REFERENCE = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
