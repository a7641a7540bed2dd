"""`DetectorSettings`: the `detector` section of the configuration.

Everything the detector needs at start-up: where bindings and exceptions come from, how
alerts are deduplicated and rate limited, and the few facts about the cluster that rules need
(cluster DNS suffixes, API server addresses). Rule *parameters* live in bindings, not here;
where a parameter's default depends on the site (R1003's allowed SSH ports) the default is
taken from this section and a binding may still override it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from gadgetclient.config import SETTINGS_CONFIG
from gadgetclient.durations import Duration
from profiler.readmodel import ProfileStatus


class DetectorSettings(BaseModel):
    model_config = SETTINGS_CONFIG

    cooldown: Duration = timedelta(hours=1)
    """After an alert, repeats of the same (workload container, rule, dedup key) are counted
    but not sent for this long (event time). The next alert after the cooldown carries the
    count and first/last seen. One hour is the predecessors' default and keeps a noisy but
    real finding visible once per hour instead of once per event."""

    cooldown_max_keys: int = Field(default=20_000, ge=100, le=10_000_000)
    """Bound of the cooldown table (least recently used keys are evicted and counted). About
    300 bytes per key, so the default costs ~6 MB; node-agent ships 10-20k as well."""

    rate_limit_window: Duration = timedelta(minutes=1)
    """Fixed window (event time) for the global and per-rule alert rate limits."""

    global_rate_limit: int = Field(default=600, ge=0)
    """Alerts per window across all rules; 0 disables. Beyond it alerts are suppressed
    (counted, reason `rate_limit`) and one system alert says the limit was reached. 600/min
    is more than any person reads and protects the exporters from a storm."""

    per_rule_rate_limit: int = Field(default=120, ge=0)
    """Alerts per window per rule; 0 disables. Keeps one noisy rule from using the whole
    global budget (KubeArmor #2789: a shared throttle hid a real alert)."""

    bindings_file: Path | None = None
    """YAML file with `RuntimeRuleAlertBinding` documents (and optionally exceptions). Used
    on hosts and laptops; in a cluster the bindings are watched as resources as well."""

    exceptions_file: Path | None = None
    """YAML file with `RuntimeAlertException` documents: user-owned allow-lists that survive
    relearning and rollouts."""

    guards_file: Path | None = None
    """YAML file (or directory) with `RuntimeGuard` documents: resources only the executables
    they name may reach (rule R3000); deploy/guards holds examples."""

    rules_file: Path | None = None
    """YAML file (or directory) with `RuntimeRule` documents: rules written in CEL
    (docs/rules.md "Writing a rule"). They are bound like built-in rules (the built-in
    default binding includes them)."""

    rule_catalogue_dir: Path | None = None
    """A directory of `RuntimeRule` files that *replaces* the built-in Python rules (their
    ids may then be the built-in ids): `deploy/rules` holds the built-in catalogue
    re-expressed in CEL. Unset: the Python rules."""

    rule_error_limit: int = Field(default=100, ge=1)
    """Evaluation errors after which a CEL rule is disabled (system alert GW0003) until its
    resource changes or the agent restarts. Errors come from the rule's own expression (a
    wrong type, a missing key), so they repeat; 100 leaves room for a rare bad event while
    stopping a broken rule from filling the logs."""

    watch_cluster: bool = True
    """Watch `RuntimeRuleAlertBinding` and `RuntimeAlertException` resources when the agent
    runs with Kubernetes access."""

    builtin_default_binding: bool = True
    """When no source provides any binding, bind every available rule to every pod (the
    `all-rules-all-pods` binding shipped in `deploy/bindings/`). Off means: no binding, no
    rules."""

    resolved_address_ttl: Duration = timedelta(minutes=10)
    """How long an address a DNS response answered to a workload lets R0011 accept an egress
    to it (when the name is in the profile). IG's trace_dns does not report the answers' own
    TTLs, so this one bound applies: longer than common CDN TTLs (20 s-5 min) so connections
    made from a cached answer still pass, short enough that a rotated-away address is
    forgotten. 0 turns the DNS-answer allowance off (exact profile addresses only)."""

    resolved_addresses_per_workload: int = Field(default=1024, ge=1, le=1_000_000)
    """Addresses remembered per workload (oldest answers evicted first, counted). A workload
    talking to a few CDNs sees tens to hundreds of addresses in ten minutes; 1024 leaves room."""

    resolved_address_workloads: int = Field(default=4096, ge=1, le=1_000_000)
    """Workloads with a resolved-address table (least recently answered dropped, counted);
    far more than the workloads of one node, so eviction only happens under abuse."""

    cluster_dns_suffixes: tuple[str, ...] = ("cluster.local",)
    """DNS names under these suffixes are cluster-internal and ignored by R0005 (service
    names, and the search-path expansions every resolver tries first)."""

    api_server_addresses: tuple[str, ...] = ()
    """IP addresses of the Kubernetes API server (e.g. the `kubernetes` Service ClusterIP and
    the endpoints). R0007 also recognises the API server from IG's peer enrichment
    (`default/kubernetes` service), so this is only needed when that is missing."""

    ssh_allowed_ports: tuple[int, ...] = (22, 2022)
    """Default of R1003's `allowedPorts`: SSH client connections to other ports alert."""

    alert_on_profile_statuses: tuple[ProfileStatus, ...] = (ProfileStatus.COMPLETED,)
    """Profile statuses that let anomaly rules run. `partial` profiles missed the container's
    start-up and `too-large` ones stopped growing, so both would alert on normal behaviour;
    add them here to accept that noise."""

    plan_cache_size: int = Field(default=16_384, ge=16)
    """Containers whose compiled rule plan is kept (a node runs at most a few hundred
    containers; churn beyond this just recompiles, a few microseconds each)."""

    clean_event_memo_size: int = Field(default=4096, ge=0)
    """Per container and event kind, remembered events that the bound rules found clean
    against a completed profile, so a repeat costs one set lookup. 0 disables. 4096 covers
    the steady-state working set of a service (its few dozen execs, paths, peers, names)."""

    latency_sample_every: int = Field(default=16, ge=1)
    """Measure the evaluation time of one event in this many for the latency histogram;
    timing every event would cost ~10% of the hot path."""
