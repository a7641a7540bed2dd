"""Print the installed Debian packages a Python-only runtime image does not need.

Run inside the base root filesystem by scripts/build-image.sh, which purges what this prints:

    chroot ROOT python3 - PACKAGE... < scripts/base_prune.py

What is kept: the dependency closure (Depends and Pre-Depends, every installed alternative,
virtual packages through Provides) of the PACKAGEs given (``python3``, and the C++ runtime
grpcio's extension links against) and of the few packages the image's own bookkeeping needs
(``dpkg`` and its status database, which the SBOM reads; ``dash``, the ``/bin/sh`` that the
purge's maintainer scripts run; ``base-files`` and ``base-passwd``). Everything else of
Debian's essential set (coreutils, bash, perl-base, util-linux, login, ...) is only there to
administer a system, and the agent's image is never administered from inside: it runs one
program, without a shell.

Not followed (`OPTIONAL`): libraries in python3's closure only because optional standard-library
extension modules load them (dbm, curses, readline, nis with its Kerberos/RPC stack). Nothing in
the image imports those modules; build-image.sh deletes them with their libraries. sqlite3 stays:
`gadgetwatch console` keeps its alerts in SQLite, and the chart runs the console from this image.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

KEEP_ROOTS = ("python3", "dpkg", "dash", "base-files", "base-passwd")
#: Packages whose only users in the image are the standard-library modules named above.
OPTIONAL = (
    "libdb5.3",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "readline-common",
    "libnsl2",
    "libtirpc3",
    "libtirpc-common",
    "libgssapi-krb5-2",
    "libkrb5-3",
    "libk5crypto3",
    "libkrb5support0",
    "libkeyutils1",
    "libcom-err2",
)


def parse(status: str) -> dict[str, dict[str, str]]:
    """Installed packages of a dpkg status file: name → fields (continuation lines dropped)."""
    packages = {}
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Status") == "install ok installed":
            packages[fields["Package"]] = fields
    return packages


def _names(relation: str) -> list[list[str]]:
    """``a (>= 1) | b:any, c`` → ``[["a", "b"], ["c"]]`` (versions and arch qualifiers dropped)."""
    groups = []
    for group in relation.split(","):
        names = [re.sub(r"[\s(].*$", "", alt.strip()).split(":")[0] for alt in group.split("|")]
        groups.append([n for n in names if n])
    return groups


def closure(
    packages: dict[str, dict[str, str]], roots: tuple[str, ...], skip: tuple[str, ...] = ()
) -> set[str]:
    """The dependency closure of `roots`, not entering the packages in `skip`."""
    providers: dict[str, set[str]] = {}
    for name, fields in packages.items():
        providers.setdefault(name, set()).add(name)
        for group in _names(fields.get("Provides", "")):
            for virtual in group:
                providers.setdefault(virtual, set()).add(name)
    keep: set[str] = set()
    todo = [r for r in roots if r in packages]
    while todo:
        name = todo.pop()
        if name in keep or name in skip:
            continue
        keep.add(name)
        fields = packages[name]
        for relation in (fields.get("Depends", ""), fields.get("Pre-Depends", "")):
            for group in _names(relation):
                for alternative in group:
                    todo.extend(providers.get(alternative, ()))
    return keep


def main() -> None:
    packages = parse(Path("/var/lib/dpkg/status").read_text(encoding="utf-8"))
    keep = closure(packages, (*KEEP_ROOTS, *sys.argv[1:]), OPTIONAL)
    sys.stdout.write("".join(f"{name}\n" for name in sorted(set(packages) - keep)))


if __name__ == "__main__":
    main()
