"""Known crypto-mining pool domains and stratum ports (R1008, R1009).

The domain list is data, kept in ``mining_domains.yaml`` beside this module with its sources
and the date it was last updated, so it can be reviewed and extended without touching code.
It holds pool domains; a query matches when its name is one of them or any sub-domain of one
(``xmr-eu1.nanopool.org`` matches ``nanopool.org``), so regional and per-coin hosts of a pool
are covered without listing each. It includes every name of Kubescape's R1008 list. Bindings
extend it per scope with R1008's ``additionalDomains`` parameter (`DomainSet`).

The file ships with the package; a broken file is a packaging bug, so loading it fails loudly
at import (`MiningDataError`) instead of running R1008 with an empty list.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

import yaml

from detector.errors import DetectorError
from gadgetclient.safeyaml import load_one


class MiningDataError(DetectorError):
    """The packaged mining-domain list is missing or malformed."""


DATA_FILE = "mining_domains.yaml"


def _normal(name: str) -> str:
    return name.strip().rstrip(".").lower()


def load_domains(text: str) -> tuple[frozenset[str], str]:
    """The domains of a mining-domain document and its `updated` date."""
    try:
        data = load_one(text)
    except yaml.YAMLError as exc:
        raise MiningDataError(f"{DATA_FILE}: not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MiningDataError(f"{DATA_FILE}: expected a mapping")
    updated = data.get("updated")
    if not isinstance(updated, str) or not updated:
        raise MiningDataError(f"{DATA_FILE}: `updated` must be a date string")
    if not isinstance(data.get("sources"), list) or not data["sources"]:
        raise MiningDataError(f"{DATA_FILE}: `sources` must list where the names come from")
    domains: set[str] = set()
    for section in ("pools", "kubescape"):
        names = data.get(section)
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise MiningDataError(f"{DATA_FILE}: `{section}` must be a list of names")
        domains.update(_normal(n) for n in names)
    return frozenset(domains), updated


def _packaged() -> tuple[frozenset[str], str]:
    try:
        text = resources.files(__package__ or "detector").joinpath(DATA_FILE).read_text("utf-8")
    except OSError as exc:
        raise MiningDataError(f"{DATA_FILE}: cannot read the packaged list: {exc}") from exc
    return load_domains(text)


MINING_POOL_DOMAINS, MINING_DOMAINS_UPDATED = _packaged()

#: Stratum ports used by mining pools and miners' defaults (3333 is the de-facto stratum
#: port, 14433/14444 nanopool/minexmr TLS and plain, 45560/45700 Monero pools).
MINING_PORTS: tuple[int, ...] = (3333, 14433, 14444, 45560, 45700)


class DomainSet:
    """Domains matched with their sub-domains: the packaged list plus a binding's additions."""

    __slots__ = ("_domains",)

    def __init__(self, additional: Iterable[str] = ()) -> None:
        extra = {_normal(n) for n in additional}
        self._domains = MINING_POOL_DOMAINS | extra if extra else MINING_POOL_DOMAINS

    def matches(self, name: str) -> bool:
        """True when `name` (lower case, no trailing dot) is a listed domain or below one."""
        domains = self._domains
        if name in domains:
            return True
        # Walk the parent domains: bounded by the label count of a DNS name (127).
        rest = name
        while True:
            _, dot, rest = rest.partition(".")
            if not dot:
                return False
            if rest in domains:
                return True


_DEFAULT = DomainSet()


def is_mining_domain(name: str) -> bool:
    """True when `name` is a packaged pool domain or below one."""
    return _DEFAULT.matches(name)
