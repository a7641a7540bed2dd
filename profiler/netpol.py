"""A NetworkPolicy from the observed TCP peers and ports.

- ``podSelector``: the workload's stable pod labels (revision labels such as pod-template-hash
  and per-pod labels are dropped: a selector must match every replica of every revision);
- ingress: one rule per (port, protocol), from the peers seen: pods as namespace + pod
  selectors, raw addresses as /32 (/128) ipBlocks, a collapsed ``*`` peer as "from anywhere";
- egress: DNS to the cluster DNS (kube-system, ``k8s-app: kube-dns``, UDP and TCP 53) whenever
  names were resolved, then one rule per (port, protocol) to the peers seen; a service peer is
  allowed by namespace (its backing pods' labels are not in the event) with a warning.

Refuses an unfinished profile (see `hardening`) and a workload without stable labels (an empty
pod selector would select every pod of the namespace).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from gadgetclient.events import PeerIdentity
from profiler.errors import IncompleteProfileError
from profiler.hardening import require_completed
from profiler.profiles import ANY_ADDRESS, REVISION_LABELS, Profile

#: Labels that differ per pod or per run; never in a selector.
UNSTABLE_LABELS = REVISION_LABELS | {
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
}

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def stable_labels(labels: dict[str, str] | tuple[tuple[str, str], ...]) -> dict[str, str]:
    items = labels.items() if isinstance(labels, dict) else labels
    return {k: v for k, v in sorted(items) if k not in UNSTABLE_LABELS}


def _peer(address: str, peer: PeerIdentity, warnings: list[str]) -> dict[str, Any] | None:
    """One NetworkPolicyPeer; None means "any peer" (the rule gets no from/to)."""
    if peer.kind == "pod" and peer.namespace:
        selector = stable_labels(peer.labels)
        out: dict[str, Any] = {
            "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: peer.namespace}}
        }
        if selector:
            out["podSelector"] = {"matchLabels": selector}
        return out
    if peer.kind == "svc" and peer.namespace:
        warnings.append(
            f"service {peer.namespace}/{peer.name}: allowed by namespace only "
            "(the events do not carry the service's pod selector)"
        )
        return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: peer.namespace}}}
    if address == ANY_ADDRESS or not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        warnings.append(f"peer {address!r} is not an IP address; skipped")
        return {}
    return {"ipBlock": {"cidr": f"{ip}/{ip.max_prefixlen}"}}


def _rules(
    groups: dict[tuple[int, str], list[tuple[str, PeerIdentity]]],
    direction: str,
    warnings: list[str],
) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for (port, proto), peers in sorted(groups.items()):
        entries: list[dict[str, Any]] = []
        anyone = False
        for address, peer in peers:
            item = _peer(address, peer, warnings)
            if item is None:
                anyone = True
            elif item and item not in entries:
                entries.append(item)
        rule: dict[str, Any] = {"ports": [{"protocol": proto, "port": port}]}
        if not anyone:
            if not entries:
                continue
            rule["from" if direction == "ingress" else "to"] = entries
        rules.append(rule)
    return rules


def network_policy(profile: Profile, *, force: bool = False) -> tuple[dict[str, Any], list[str]]:
    warnings = require_completed(profile, artifact="NetworkPolicy", force=force)
    selector = stable_labels(profile.meta.labels)
    if not selector:
        raise IncompleteProfileError(
            "no stable pod labels recorded: the policy would select every pod of the namespace",
            obj=f"{profile.key.namespace or '-'}/{profile.name}",
            field="status.podLabels",
        )
    ingress: dict[tuple[int, str], list[tuple[str, PeerIdentity]]] = {}
    for port, proto, address, peer in profile.entries.ingress:
        ingress.setdefault((port, proto), []).append((address, peer))
    egress: dict[tuple[int, str], list[tuple[str, PeerIdentity]]] = {}
    for address, port, proto, peer in profile.entries.egress:
        egress.setdefault((port, proto), []).append((address, peer))
    egress_rules = _rules(egress, "egress", warnings)
    if profile.entries.dns:
        egress_rules.insert(
            0,
            {
                "to": [DNS_PEER],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            },
        )
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": profile.name,
            "namespace": profile.key.namespace,
            "annotations": {"gadgetwatch.io/workload": profile.key.display()},
        },
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": _rules(ingress, "ingress", warnings),
            "egress": egress_rules,
        },
    }
    return policy, sorted(set(warnings), key=warnings.index)
