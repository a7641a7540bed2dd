"""Generalising learned behaviour the way an engineer reading the profile would, within bounds.

A profile stores behaviour literally, and some literals are not behaviour: the edge name a CDN
client happened to get, the replica's own pod name in its arguments, today's log file name.
Left literal, each makes the next occurrence alert although nothing changed. Three
generalisations replace such literals with placeholders, each bounded so an attacker gains
nothing an engineer would not have allowed by hand:

- **files** (flush time, `file_shape`, used by `collapsing.collapse_opens`): in one directory,
  names that differ only in numbers and dates (``access.log.1``/``access.log.2``,
  ``app.2025-12-08.60.log.gz``, ``000073.sst``, WAL segments) become one pattern with
  ``⟨n⟩``/``⟨date⟩`` placeholders once `rotationThreshold` distinct names of that shape were
  seen. The rest of the name stays literal: another extension, another prefix, an extra
  component is another shape and still alerts.
- **dns** (flush time, `collapse_dns`): under one parent domain, `dnsWildcardThreshold`
  distinct first labels of one generated-looking shape (letters-and-digits runs, e.g.
  ``r3---sn-4g5e6nsz``) become ``*.<parent>``. Never when the parent is a public suffix
  (``com``, ``co.uk``, ``cloudfront.net``: anyone can register names there), by the Public
  Suffix List bundled with `publicsuffixlist` (ICANN and private sections; no network fetch),
  and never from fewer than two names.
- **args** (learning and matching time, `ArgNormalizer`): argument tokens that contain the pod's
  own name, its node's name or its pod IP (as whole names, not inside longer ones), or that are
  the StatefulSet ordinal (a whole token or a ``--flag=N`` value), are stored as
  ``⟨pod⟩``/``⟨node⟩``/``⟨pod-ip⟩``/``⟨ordinal⟩``; the detector normalises a live exec's
  arguments the same way for its own pod before asking the profile. Every other token, the
  flags included, stays exact.

Each kind can be switched off cluster-wide (`ProfilerSettings.generalize`) or per workload with
the pod annotation `generalizeAnnotation` (``"none"``, or the kinds to keep, ``"dns,files"``).
Matching honours placeholders in any profile, so an imported profile may use them too.
"""

from __future__ import annotations

import enum
import functools
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList

from gadgetclient.events import Container

# -- kinds and the per-workload switch ---------------------------------------------------------


class Generalization(enum.StrEnum):
    DNS = "dns"
    ARGS = "args"
    FILES = "files"


ALL = frozenset(Generalization)
NONE: frozenset[Generalization] = frozenset()

_OFF = frozenset({"none", "off", "false", "no", ""})
_ON = frozenset({"all", "on", "true", "yes"})


def parse_generalize(value: str) -> frozenset[Generalization] | None:
    """The annotation's value -> the kinds it keeps; None when it is not understood."""
    text = value.strip().lower()
    if text in _OFF:
        return NONE
    if text in _ON:
        return ALL
    kinds: set[Generalization] = set()
    for part in text.split(","):
        try:
            kinds.add(Generalization(part.strip()))
        except ValueError:
            return None
    return frozenset(kinds)


# -- files --------------------------------------------------------------------------------------

NUMBER = "⟨n⟩"
DATE = "⟨date⟩"

#: A calendar date with separators (``2025-12-08``, ``2025_12_08``, ``2025.12.08``), optionally
#: with an hour and minutes/seconds (``2025-12-08T13-05``, ``2025-12-08-13``). Compact dates
#: (``20251208``) are plain numbers: a date without separators cannot be told from a counter.
_DATE = (
    r"(?<!\d)(?:19|20)\d{2}(?P<sep>[-_.])(?:0[1-9]|1[0-2])(?P=sep)(?:0[1-9]|[12]\d|3[01])"
    r"(?:[T_-](?:[01]\d|2[0-3])(?:[:-]?[0-5]\d){0,2})?(?!\d)"
)
#: Hexadecimal segment numbers (PostgreSQL WAL ``00000001000000000000000A``, etcd
#: ``0000000000000001-00000000000000ab.wal``): 16+ hex digits with at least one decimal digit,
#: standing alone. 16 keeps words and short hex-looking names literal.
_HEX = r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*\d)[0-9A-Fa-f]{16,}(?![0-9A-Za-z])"
_NUMERIC = re.compile(f"(?P<date>{_DATE})|(?P<hex>{_HEX})|(?P<num>\\d+)")


def _placeholder(match: re.Match[str]) -> str:
    return DATE if match.group("date") else NUMBER


_DIGIT = re.compile(r"\d")
#: A short random-looking token: 6-15 hex characters mixing letters and digits, standing alone
#: (session ids, temp-file suffixes: ``sess_00001eef``). Its digit runs are not a counter, so a
#: name holding one has no numbered shape: such names stay literal, and a directory of them is
#: judged by its number of children (`collapsing.py`), not folded into one pattern per letter
#: layout. 16+ hex characters are segment numbers (`_HEX`).
_RANDOM_HEX = re.compile(
    r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{6,15}(?![0-9A-Za-z])"
)


@functools.lru_cache(maxsize=4096)
def file_shape(segment: str) -> str:
    """``app.2025-12-08.60.log.gz`` -> ``app.⟨date⟩.⟨n⟩.log.gz``; a name without numbers is
    returned unchanged. Cached because the same names recur at every flush; 4096 names (a few
    hundred KiB) cover a busy directory, and a flood of distinct names cannot grow it further."""
    if _DIGIT.search(segment) is None or _RANDOM_HEX.search(segment) is not None:
        return segment
    return _NUMERIC.sub(_placeholder, segment)


def is_file_pattern(segment: str) -> bool:
    return NUMBER in segment or DATE in segment


def path_has_file_pattern(path: str) -> bool:
    return NUMBER in path or DATE in path


# -- dns ----------------------------------------------------------------------------------------

#: A learned DNS wildcard: ``*.<parent>``.
DNS_WILDCARD_PREFIX = "*."

_LABEL_RUNS = re.compile(r"[a-z0-9]+|[^a-z0-9]+")


def label_shape(label: str) -> str | None:
    """The shape of a DNS label when it looks generated, else None.

    Runs of letters and digits are classified: digits only -> ``N``, letters and digits mixed
    -> ``X``; letter-only runs and separators stay literal. ``r3---sn-4g5e6nsz`` ->
    ``X---sn-X``, ``api-12`` -> ``api-N``; ``www`` has no generated part (None).
    """
    out: list[str] = []
    generated = False
    for run in _LABEL_RUNS.findall(label.lower()):
        if run.isdigit():
            out.append("N")
            generated = True
        elif run.isalnum() and not run.isalpha():
            out.append("X")
            generated = True
        else:
            out.append(run)
    return "".join(out) if generated else None


@functools.lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    # The snapshot bundled with the package: loaded once (about 10k rules), never fetched.
    return PublicSuffixList()


def is_public_suffix(domain: str) -> bool:
    """True for ``com``, ``co.uk``, ``s3.amazonaws.com`` and any single label (the PSL's
    implicit ``*`` rule): names anyone can register under."""
    return bool(_psl().is_public(domain))


@dataclass(slots=True)
class DnsCollapse:
    """`collapse_dns`' result: the new mapping and what was folded or refused, for metrics."""

    dns: dict[str, frozenset[str]]
    folded: int = 0
    #: parents that met the threshold but are public suffixes
    refused: int = 0


def collapse_dns(dns: Mapping[str, frozenset[str]], threshold: int) -> DnsCollapse:
    """Fold generated-looking names under one parent into ``*.<parent>`` (addresses unioned).

    A parent qualifies when `threshold` distinct first labels of one shape were seen under it,
    or when its wildcard is already learned (later names fold in); never when it is a public
    suffix.
    """
    wildcards = {name[2:] for name in dns if name.startswith(DNS_WILDCARD_PREFIX)}
    groups: dict[str, dict[str, list[str]]] = {}
    for name in dns:
        first, dot, parent = name.partition(".")
        if not dot or not parent or first == "*":
            continue
        shape = label_shape(first)
        if shape is None:
            continue
        groups.setdefault(parent, {}).setdefault(shape, []).append(name)
    out = dict(dns)
    result = DnsCollapse(out)
    for parent, shapes in groups.items():
        eligible = [names for names in shapes.values() if len(names) >= threshold]
        if parent in wildcards:
            eligible = list(shapes.values())
        if not eligible:
            continue
        if is_public_suffix(parent):
            result.refused += 1
            continue
        key = DNS_WILDCARD_PREFIX + parent
        addresses = set(out.get(key, frozenset()))
        for names in eligible:
            for name in names:
                addresses |= out.pop(name)
                result.folded += 1
        out[key] = frozenset(addresses)
    return result


# -- arguments ----------------------------------------------------------------------------------

POD = "⟨pod⟩"
ORDINAL = "⟨ordinal⟩"
POD_IP = "⟨pod-ip⟩"
NODE = "⟨node⟩"
ARG_PLACEHOLDERS = (POD, ORDINAL, POD_IP, NODE)

#: Names shorter than this are never replaced: a one-letter node or pod name would turn
#: ordinary tokens into placeholders.
_MIN_NAME = 3
_NAME_CHARS = "A-Za-z0-9_-"
_FLAG_VALUE = re.compile(r"(-{1,2}[A-Za-z0-9][A-Za-z0-9_.-]*=)(\d+)")
#: Command lines remembered per container: programs run a handful of distinct ones; past the
#: bound the memo starts again (a miss costs one regex pass per token).
_MEMO_SIZE = 256
#: The StatefulSet pod-index label (Kubernetes >= 1.28), preferred over parsing the name.
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


class ArgNormalizer:
    """Replaces one pod's identity in argument tokens with placeholders (built per container).

    `normalize` returns the very same tuple when nothing changed, so callers can tell.
    """

    __slots__ = ("_memo", "_names", "_ordinal", "_pattern", "_replacements")

    def __init__(self, *, pod: str = "", ordinal: str = "", pod_ip: str = "", node: str = ""):
        replacements: dict[str, str] = {}
        alternatives: list[str] = []
        for value, placeholder in ((pod, POD), (node, NODE)):
            if len(value) >= _MIN_NAME and value not in replacements:
                replacements[value] = placeholder
                alternatives.append(f"(?<![{_NAME_CHARS}]){re.escape(value)}(?![{_NAME_CHARS}])")
        if pod_ip and pod_ip not in replacements:
            replacements[pod_ip] = POD_IP
            alternatives.append(rf"(?<![\d.]){re.escape(pod_ip)}(?!\d)(?!\.\d)")
        # Longest first, so a pod name that contains the node name wins.
        alternatives.sort(key=len, reverse=True)
        self._replacements = replacements
        self._names = tuple(replacements)
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None
        self._ordinal = ordinal if ordinal.isdigit() else ""
        #: args -> normalized args, for the lines that hold the pod's identity (a container
        #: repeats a handful of command lines; lines without it are learned literally).
        self._memo: dict[tuple[str, ...], tuple[str, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self._pattern is not None or self._ordinal)

    def _token(self, token: str) -> str:
        new = token
        if self._pattern is not None:
            for name in self._names:
                if name in token:
                    new = self._pattern.sub(lambda m: self._replacements[m.group(0)], token)
                    break
        ordinal = self._ordinal
        if ordinal and ordinal in new:
            if new == ordinal:
                return ORDINAL
            m = _FLAG_VALUE.fullmatch(new)
            if m is not None and m.group(2) == ordinal:
                return m.group(1) + ORDINAL
        return new

    def normalize(self, args: tuple[str, ...]) -> tuple[str, ...]:
        found = self._memo.get(args)
        if found is not None:
            return found
        result = self._normalize(args)
        if result is not args:  # only lines with the identity in them are asked again
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[args] = result
        return result

    def _normalize(self, args: tuple[str, ...]) -> tuple[str, ...]:
        changed: list[str] | None = None
        for i, token in enumerate(args):
            new = self._token(token)
            if new != token:
                if changed is None:
                    changed = list(args)
                changed[i] = new
        return tuple(changed) if changed is not None else args


def ordinal_of(container: Container) -> str:
    """The StatefulSet ordinal of the container's pod ("" for other pods)."""
    if container.owner_kind != "StatefulSet":
        return ""
    index = dict(container.pod_labels).get(POD_INDEX_LABEL, "")
    if index.isdigit():
        return index
    prefix = container.owner_name + "-"
    if container.pod.startswith(prefix) and container.pod[len(prefix) :].isdigit():
        return container.pod[len(prefix) :]
    return ""


def arg_normalizer(container: Container, pod_ip: str = "") -> ArgNormalizer:
    return ArgNormalizer(
        pod=container.pod, ordinal=ordinal_of(container), pod_ip=pod_ip, node=container.node
    )


def has_arg_placeholder(args: tuple[str, ...]) -> bool:
    return any(p in token for token in args for p in ARG_PLACEHOLDERS)


# -- what a profile holds -----------------------------------------------------------------------


def generalized_entries(
    execs: Mapping[str, frozenset[tuple[str, ...]]],
    opens: Mapping[str, frozenset[str]],
    dns: Mapping[str, frozenset[str]],
) -> Iterator[tuple[Generalization, str]]:
    """Every entry that holds a placeholder, with its kind (for `profile show`)."""
    for name in sorted(dns):
        if name.startswith(DNS_WILDCARD_PREFIX):
            yield Generalization.DNS, name
    for path in sorted(opens):
        if path_has_file_pattern(path):
            yield Generalization.FILES, path
    for path in sorted(execs):
        for args in sorted(execs[path]):
            if has_arg_placeholder(args):
                yield Generalization.ARGS, f"{path} {list(args)}"


def count_generalized(
    execs: Mapping[str, frozenset[tuple[str, ...]]],
    opens: Mapping[str, frozenset[str]],
    dns: Mapping[str, frozenset[str]],
) -> Counter[str]:
    return Counter(kind.value for kind, _ in generalized_entries(execs, opens, dns))
