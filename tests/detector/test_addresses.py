"""`detector.addresses`: the private set is exactly the documented one, edges included."""

from __future__ import annotations

import pytest

from detector.addresses import canonical, is_link_local, is_loopback, is_private


@pytest.mark.parametrize(
    ("addr", "private"),
    [
        # RFC 1918, first and last address of each block, and the neighbours outside.
        ("10.0.0.0", True), ("10.255.255.255", True), ("9.255.255.255", False),
        ("11.0.0.0", False),
        ("172.16.0.0", True), ("172.31.255.255", True), ("172.15.255.255", False),
        ("172.32.0.0", False),
        ("192.168.0.0", True), ("192.168.255.255", True), ("192.167.255.255", False),
        ("192.169.0.0", False),
        # CGNAT 100.64.0.0/10.
        ("100.64.0.0", True), ("100.127.255.255", True), ("100.63.255.255", False),
        ("100.128.0.0", False),
        # Loopback and link-local.
        ("127.0.0.1", True), ("127.255.255.254", True), ("169.254.0.1", True),
        ("169.254.169.254", True), ("::1", True), ("fe80::1", True), ("febf::1", True),
        ("fec0::1", False),
        # RFC 4193 unique local.
        ("fc00::", True), ("fdff:ffff::1", True), ("fbff::1", False), ("fe00::1", False),
        # What Python's is_private also calls private, and the documented set does not.
        ("192.0.2.10", False),  # TEST-NET-1 (documentation)
        ("198.51.100.7", False),  # TEST-NET-2
        ("203.0.113.50", False),  # TEST-NET-3
        ("198.18.0.1", False),  # benchmarking
        ("198.19.255.255", False),
        ("0.0.0.1", False),  # "this network"
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),  # broadcast
        ("192.0.0.8", False),  # IETF protocol assignments
        ("2001:db8::1", False),  # IPv6 documentation
        ("::", False),  # unspecified
        ("64:ff9b:1::1", False),  # local-use NAT64 prefix, not the well-known one
        # Wrapped forms of private IPv4 addresses.
        ("::ffff:10.1.2.3", True), ("64:ff9b::a00:1", True), ("::ffff:8.8.8.8", False),
        # Public and garbage.
        ("8.8.8.8", False), ("2606:4700::1111", False), ("", False), ("10.0.0", False),
        ("not an address", False), ("10.0.0.1%eth0", False),
    ],
)  # fmt: skip
def test_is_private_is_exactly_the_documented_set(addr: str, private: bool) -> None:
    assert is_private(addr) is private


def test_loopback_link_local_and_canonical_forms() -> None:
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.0.0.1")
    assert is_link_local("64:ff9b::a9fe:a9fe")
    assert canonical("64:ff9b::a9fe:a9fe") == "169.254.169.254"
    assert canonical("::FFFF:169.254.169.254") == "169.254.169.254"
    assert canonical("FD00:EC2:0::254") == "fd00:ec2::254"
    assert canonical("garbage") == "garbage"
