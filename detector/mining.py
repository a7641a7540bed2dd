"""Known crypto-mining pool domains and stratum ports (R1008, R1009).

The list holds *registrable pool domains*; a query matches when its name is one of them or
any sub-domain of one (``xmr-eu1.nanopool.org`` matches ``nanopool.org``), so regional and
per-coin hosts of a pool are covered without listing each. Maintain it here: one domain per
entry, lower case, no trailing dot. Sources: the pools' public connection pages; the same
pools appear in the predecessors' lists.
"""

from __future__ import annotations

MINING_POOL_DOMAINS: frozenset[str] = frozenset(
    {
        "2miners.com",
        "antpool.com",
        "bohemianpool.com",
        "c3pool.com",
        "c3pool.org",
        "c4pool.org",
        "cryptonote.social",
        "dwarfpool.com",
        "dxpool.com",
        "ethermine.org",
        "ethpool.org",
        "f2pool.com",
        "fairhash.org",
        "hashvault.pro",
        "herominers.com",
        "kryptex.com",
        "kryptex.network",
        "minergate.com",
        "minexmr.com",
        "mining-dutch.nl",
        "miningpoolhub.com",
        "moneroocean.stream",
        "moneropool.com",
        "monerohash.com",
        "nanopool.org",
        "nicehash.com",
        "p2pool.io",
        "pool-pay.com",
        "prohashing.com",
        "rplant.xyz",
        "slushpool.com",
        "solopool.org",
        "supportxmr.com",
        "unmineable.com",
        "viabtc.com",
        "xmrpool.eu",
        "xmrpool.net",
        "zergpool.com",
        "zeropool.io",
    }
)

#: Stratum ports used by mining pools and miners' defaults (3333 is the de-facto stratum
#: port, 14433/14444 nanopool/minexmr TLS and plain, 45560/45700 Monero pools).
MINING_PORTS: tuple[int, ...] = (3333, 14433, 14444, 45560, 45700)


def is_mining_domain(name: str) -> bool:
    """True when `name` (lower case, no trailing dot) is a pool domain or below one."""
    if name in MINING_POOL_DOMAINS:
        return True
    # Walk the parent domains: at most a handful of labels for real names; bounded by the
    # label count of a DNS name (127).
    rest = name
    while True:
        _, dot, rest = rest.partition(".")
        if not dot:
            return False
        if rest in MINING_POOL_DOMAINS:
            return True
