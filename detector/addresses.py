"""Address classes the network rules share: private (in-cluster) and cloud instance metadata.

Why not `ipaddress.ip_address(a).is_private`: Python's flag follows the IANA special-purpose
registries, so it also calls documentation (192.0.2.0/24, 2001:db8::/32), benchmarking
(198.18.0.0/15), "this network" (0.0.0.0/8), reserved (240.0.0.0/4) and other ranges private.
Those are not where pods, Services and nodes live, and treating them as private would hide
connections to them from R0011. `is_private` therefore checks exactly the documented set.
"""

from __future__ import annotations

import functools
import ipaddress

#: Exactly the ranges docs/rules.md documents as private (in-cluster) destinations.
PRIVATE_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),  # RFC 1918
    ipaddress.ip_network("172.16.0.0/12"),  # RFC 1918
    ipaddress.ip_network("192.168.0.0/16"),  # RFC 1918
    ipaddress.ip_network("100.64.0.0/10"),  # RFC 6598, carrier-grade NAT (some pod CIDRs)
    ipaddress.ip_network("127.0.0.0/8"),  # loopback
    ipaddress.ip_network("169.254.0.0/16"),  # link-local
    ipaddress.ip_network("fc00::/7"),  # RFC 4193 unique local
    ipaddress.ip_network("::1/128"),  # loopback
    ipaddress.ip_network("fe80::/10"),  # link-local
)

#: RFC 6052 well-known NAT64 prefix: an IPv6-only pod reaches IPv4 hosts through it.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: Bound of the parse cache: the distinct peer addresses a node sees in a while; past it, old
#: entries are dropped (lru), which only costs a re-parse.
_CACHE = 4096


@functools.lru_cache(maxsize=_CACHE)
def _parse(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, with IPv4-mapped (``::ffff:a.b.c.d``) and NAT64 forms unwrapped to IPv4."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip


def canonical(addr: str) -> str:
    """The textual form every rule compares: IPv4 for mapped/NAT64 forms, IPv6 compressed and
    lower-case; an unparsable string is returned unchanged."""
    ip = _parse(addr)
    return addr if ip is None else str(ip)


def is_private(addr: str) -> bool:
    """RFC 1918/4193, loopback, link-local, CGNAT (`PRIVATE_NETWORKS`), nothing else."""
    ip = _parse(addr)
    if ip is None:
        return False
    return any(ip.version == net.version and ip in net for net in PRIVATE_NETWORKS)


def is_loopback(addr: str) -> bool:
    ip = _parse(addr)
    return ip is not None and ip.is_loopback


def is_link_local(addr: str) -> bool:
    ip = _parse(addr)
    return ip is not None and ip.is_link_local


#: Cloud instance-metadata and credential endpoints a container has no business calling.
METADATA_ADDRESSES: tuple[str, ...] = (
    "169.254.169.254",  # AWS, GCP, Azure, OCI, OpenStack, DigitalOcean, Hetzner IMDS
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "169.254.170.2",  # AWS ECS task metadata and credentials
    "169.254.170.23",  # EKS Pod Identity agent
    "fd00:ec2::23",  # EKS Pod Identity agent over IPv6
    "100.100.100.200",  # Alibaba Cloud metadata
    "168.63.129.16",  # Azure WireServer (extension configuration, certificates)
)

#: DNS names of metadata services (each resolves to one of the addresses above).
METADATA_NAMES: tuple[str, ...] = ("metadata.google.internal",)
