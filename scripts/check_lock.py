"""Check that the lock files cover pyproject.toml: every declared requirement (runtime in
requirements.lock, runtime + dev in requirements-dev.lock) is pinned there at a version its
specifier allows, and every pin carries hashes.

Why a check and not a re-resolve: resolving again asks the package index, whose answer changes
with every release, so a re-resolve check would fail on days nobody changed anything. This one
fails exactly when someone edits pyproject.toml (another engineer adds a dependency, a floor
moves) without running scripts/lock.sh.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, Version]:
    found: dict[str, Version] = {}
    text = lock.read_text(encoding="utf-8")
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = _PIN.match(block)
        if match is None:
            continue
        if "--hash=sha256:" not in block:
            raise SystemExit(f"check_lock: {lock.name}: {match.group(1)} has no hash")
        found[canonicalize_name(match.group(1))] = Version(match.group(2))
    return found


def problems(requirements: list[str], lock: Path) -> list[str]:
    locked = pins(lock)
    out = []
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name not in locked:
            out.append(f"{lock.name}: {req.name} is not locked")
        elif not req.specifier.contains(locked[name], prereleases=True):
            out.append(f"{lock.name}: {req.name}=={locked[name]} does not satisfy {text!r}")
    return out


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = project["dependencies"]
    dev = project["optional-dependencies"]["dev"]
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    found = [
        *problems(runtime, ROOT / "requirements.lock"),
        *problems([*runtime, *dev], ROOT / "requirements-dev.lock"),
        *problems(build, ROOT / "requirements-build.lock"),
    ]
    if found:
        sys.stderr.write("".join(f"check_lock: {p}\n" for p in found))
        sys.exit("check_lock: the lock files are stale: run scripts/lock.sh and commit them")


if __name__ == "__main__":
    main()
