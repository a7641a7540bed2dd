"""What changed between two profiles (two workloads, or two exported revisions of one).

`diff` returns the entries only in the first (removed) and only in the second (added), using
`merging.subtract` per section (an open whose flags grew shows the new flags as added), plus the
metadata that changed. `format_diff` renders it as ``-``/``+`` lines, one entry per line, in a
stable order, so it reads like a unified diff and is easy to assert on.

Process-aware entries end with ``by <executables>`` (``by any process`` once the bound was
exceeded); an entry whose only change is a new executable shows as a line of its own with just
the ``by`` part.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from gadgetclient.textsafety import escape_control
from profiler.merging import subtract
from profiler.profiles import ANY_PROCESS, Entries, Profile, peer_label


@dataclass(frozen=True, slots=True)
class ProfileDiff:
    removed: Entries
    added: Entries
    #: (field, before, after) of metadata that differs
    meta: tuple[tuple[str, str, str], ...]

    @property
    def empty(self) -> bool:
        return self.removed.is_empty() and self.added.is_empty() and not self.meta


def diff(before: Profile, after: Profile) -> ProfileDiff:
    a, b = before.meta, after.meta
    pairs = (
        ("workload", before.key.display(), after.key.display()),
        ("status", a.status.value, b.status.value),
        ("series", str(a.series), str(b.series)),
        ("imageDigests", ",".join(sorted(a.image_digests)), ",".join(sorted(b.image_digests))),
        ("managedBy", a.managed_by.value, b.managed_by.value),
    )
    return ProfileDiff(
        removed=subtract(before.entries, after.entries),
        added=subtract(after.entries, before.entries),
        meta=tuple(p for p in pairs if p[1] != p[2]),
    )


def by(processes: frozenset[str] | None) -> str:
    """`` by /bin/cat, /usr/bin/x`` for a process set ("" when the entry records none)."""
    if processes is None:
        return ""
    if ANY_PROCESS in processes:
        return " by any process"
    return " by " + ", ".join(escape_control(p) for p in sorted(processes))


def entry_lines(entries: Entries) -> list[str]:
    # Arguments as a person would type them (`sh -c 'id; ls'`), not as a Python list.
    lines = [f"exec {path}: {shlex.join(args)}" for path in sorted(entries.execs)
             for args in sorted(entries.execs[path])]  # fmt: skip
    opens, dns, egress = entries.open_procs, entries.dns_procs, entries.egress_procs
    lines += [
        f"open {p} {','.join(sorted(entries.opens[p]))}{by(opens.get(p))}"
        for p in sorted(entries.opens)
    ]
    lines += [f"open {p}{by(opens[p])}" for p in sorted(opens) if p not in entries.opens]
    lines += [f"syscall {s}" for s in sorted(entries.syscalls)]
    lines += [f"capability {c} ({s})" for c, s in sorted(entries.capabilities)]
    lines += [
        f"dns {n} {','.join(sorted(entries.dns[n]))}{by(dns.get(n))}" for n in sorted(entries.dns)
    ]
    lines += [f"dns {n}{by(dns[n])}" for n in sorted(dns) if n not in entries.dns]
    lines += sorted(
        f"ingress {port}/{proto} from {peer_label(peer, addr)}"
        for port, proto, addr, peer in entries.ingress
    )
    lines += sorted(
        f"egress {peer_label(e[3], e[0])} {e[1]}/{e[2]}{by(egress.get(e))}" for e in entries.egress
    )
    lines += sorted(
        f"egress {peer_label(e[3], e[0])} {e[1]}/{e[2]}{by(known)}"
        for e, known in egress.items()
        if e not in entries.egress
    )
    return lines


def format_diff(d: ProfileDiff) -> list[str]:
    out = [f"~ {name}: {before} -> {after}" for name, before, after in d.meta]
    out += [f"- {line}" for line in entry_lines(d.removed)]
    out += [f"+ {line}" for line in entry_lines(d.added)]
    return out
