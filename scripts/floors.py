"""Print the oldest versions pyproject.toml allows, as pip constraints (``name==floor``).

Why: a declared floor nobody installs is a guess. ``scripts/test.sh --floors`` installs exactly
these versions into a separate virtualenv and runs the unit tests, so every ``>=`` in
``[project] dependencies`` is a version that was seen to pass. Every runtime dependency must
have a ``>=`` floor; anything else is an error, so a new dependency cannot slip in unpinned.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# name, optional extras, then the specifier list; PEP 508 markers are not used in this project.
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_FLOOR = re.compile(r">=\s*([0-9][^,;\s]*)")


def floors(pyproject: Path) -> list[str]:
    """``name==floor`` for every runtime dependency of ``pyproject``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    pins: list[str] = []
    for requirement in project["dependencies"]:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"floors: cannot parse requirement {requirement!r}")
        floor = _FLOOR.search(match.group(3))
        if floor is None:
            raise SystemExit(f"floors: {requirement!r} has no '>=' floor")
        pins.append(f"{match.group(1)}=={floor.group(1)}")
    return pins


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    sys.stdout.write("".join(f"{pin}\n" for pin in floors(root / "pyproject.toml")))


if __name__ == "__main__":
    main()
