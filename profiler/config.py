"""`ProfilerSettings`: the `profiler` section of the configuration.

The composition root (`gadgetwatch.config.Settings`) composes this section; nothing in the
profiler reads the environment. Durations are written the human way ("24h", "10m", "500ms") and
parsed here, because the profiler may not import the composition root's helpers (layering).
"""

from __future__ import annotations

import enum
from datetime import timedelta

from pydantic import BaseModel, Field, field_validator

from gadgetclient.config import SETTINGS_CONFIG
from gadgetclient.durations import Duration
from profiler.generalizing import Generalization


class RolloutPolicy(enum.StrEnum):
    """What a new revision (image digest or pod-template hash) does to a finished profile."""

    #: Reopen learning for `rolloutLearningPeriod` and merge what the new revision does into the
    #: existing profile (nothing is thrown away).
    RELEARN = "relearn"
    #: Keep the finished profile as it is; the new revision is judged against it.
    KEEP = "keep"


class StoreKind(enum.StrEnum):
    DIRECTORY = "directory"
    KUBERNETES = "kubernetes"


class CollapsePrefix(BaseModel):
    model_config = SETTINGS_CONFIG

    prefix: str
    """Directory the threshold applies to (and everything below it unless a longer prefix
    matches)."""

    threshold: int = Field(ge=2, le=100_000)
    """A directory under this prefix with more distinct children than this becomes one
    wildcard segment. At least 2: a threshold of 1 would collapse every directory."""


class ProfilerSettings(BaseModel):
    model_config = SETTINGS_CONFIG

    enabled: bool = True
    """Learn profiles. When false the agent only reads existing profiles (detection only)."""

    learning_period: Duration = timedelta(hours=24)
    """Event time from container start to a finished profile. 24 h covers a daily cycle (cron
    jobs, nightly batches, traffic peaks); the pod annotation `learningPeriodAnnotation`
    overrides it per workload."""

    learning_period_annotation: str = "gadgetwatch.io/learning-period"
    """Pod annotation holding a per-workload learning period ("2h"). An unparsable value is
    counted as an error and the default applies."""

    update_period: Duration = timedelta(minutes=1)
    """How often deltas are flushed to the store. One minute keeps a fresh view for the other
    nodes while costing one write per active profile per minute at most."""

    writes_per_second: float = Field(default=10.0, gt=0)
    """Profile writes (create, update, delete) per second this agent sends to the Kubernetes
    API server at most; a flush waits for its turn rather than dropping anything. 10/s
    matches the order of client-go's default QPS for one client, so a node with thousands of
    containers spreads its first flush over minutes instead of bursting."""

    attach_grace: Duration = timedelta(seconds=10)
    """A container that started more than this before the agent's first event was already
    running when the agent attached: its start-up was not seen, so its profile is `partial`.
    10 s absorbs the time IG needs to start all gadget streams."""

    rollout_policy: RolloutPolicy = RolloutPolicy.RELEARN
    """`relearn` (default): a new image digest or pod-template hash reopens learning and merges
    the new behaviour into the kept profile; `keep`: the finished profile stays as it is. See
    docs/profiles.md for why relearn is the default."""

    rollout_learning_period: Duration = timedelta(hours=1)
    """Learning period reopened by a rollout. Shorter than `learningPeriod` because the profile
    already holds the workload's daily behaviour and anomaly rules are paused while a profile
    learns: an hour covers start-up and warm traffic of the new revision."""

    flush_attempts: int = Field(default=5, ge=1, le=100)
    """Read-merge-write attempts per flush when the store reports a conflict. Replicas on a
    handful of nodes rarely collide more than twice in a row; a delta that still fails stays
    queued for the next flush, so nothing is lost by giving up early."""

    max_entries: int = Field(default=20_000, ge=100, le=1_000_000)
    """Entries per profile (execs + opens + network + DNS + capabilities + syscalls). Half of
    the predecessors' 40 000: a profile that large is noise, not a model of normal behaviour.
    Beyond it the profile becomes `too-large` with the reason; it is never truncated."""

    max_bytes: int = Field(default=512 * 1024, ge=4096, le=1_400_000)
    """Serialized size cap of one profile, bytes. The API server refuses objects over 1.5 MiB
    and adds managedFields and metadata of its own; 512 KiB leaves more than half the limit
    free for those."""

    collapse_threshold: int = Field(default=50, ge=2, le=100_000)
    """A directory with more distinct children than this becomes a wildcard segment at flush
    (when no `collapsePrefixes` entry matches). 50 keeps config directories literal while
    folding per-request or per-session files."""

    collapse_prefixes: tuple[CollapsePrefix, ...] = (
        CollapsePrefix(prefix="/etc", threshold=100),
        CollapsePrefix(prefix="/tmp", threshold=20),
    )
    """Per-prefix thresholds, the longest matching prefix wins. `/etc` holds many legitimate
    literal files (certificates, zoneinfo); `/tmp` is where random names live."""

    generalize: tuple[Generalization, ...] = (
        Generalization.DNS,
        Generalization.ARGS,
        Generalization.FILES,
    )
    """Generalisations learning applies (docs/profiles.md "Generalisation"): `dns` (generated
    names under one parent become `*.<parent>`), `args` (the pod's own name, ordinal, IP and
    node in arguments become placeholders), `files` (numbered and dated file names of one
    shape become a pattern). All on by default; the pod annotation `generalizeAnnotation`
    narrows them per workload."""
    generalize_annotation: str = "gadgetwatch.io/generalize"
    """Pod annotation choosing a workload's generalisations: `none` (off), `all`, or the kinds
    to keep (`"dns,files"`). Only kinds also in `generalize` apply; a bad value is counted as
    an error and the settings apply."""
    dns_wildcard_threshold: int = Field(default=4, ge=2, le=100_000)
    """Distinct generated-looking first labels of one shape under one parent domain that make
    it `*.<parent>`. A CDN client gets a new edge name every few minutes, so a day shows
    dozens; 4 keeps two or three fixed hosts literal. At least 2: one name is no pattern."""
    rotation_threshold: int = Field(default=2, ge=2, le=100_000)
    """Distinct file names of one numbered/dated shape in one directory that make it a pattern
    (`access.log.⟨n⟩`). Rotation shows at most one or two new names in a learning day, so 2;
    one name alone is no pattern."""
    process_aware: bool = False
    """Process-aware profiles (docs/profiles.md "Process-aware profiles"): record, per open
    path, DNS name and egress entry, which executables reached it while learning, so R0002,
    R0005, R0006, R0011 and R2100 alert when another process reaches a known resource. Off by
    default: it needs trace_exec (the executable is known only from exec events) and costs
    memory; the pod annotation `processAwareAnnotation` turns it on or off per workload."""
    process_aware_annotation: str = "gadgetwatch.io/process-aware"
    """Pod annotation choosing process-aware learning for a workload: `true` or `false`
    (overrides `processAware`). A bad value is counted as an error and the setting applies."""
    max_processes_per_entry: int = Field(default=8, ge=1, le=1024)
    """Executables recorded per entry at most; past it the entry allows any process (counted
    in `profiler_process_scope_dropped_total{reason="overflow"}`). A resource reached by more
    than a handful of programs (shared libraries, /etc/hosts, the resolver) is shared by
    design, and scoping it adds nothing but size; 8 covers an application, its shell helpers
    and a sidecar-style tool while keeping an entry's cost to a few shared strings."""
    store: StoreKind = StoreKind.DIRECTORY
    """`directory` (the embedded default, for hosts and laptops) or `kubernetes`
    (`ApplicationProfile` resources in the workload's namespace)."""

    directory: str = "/var/lib/gadgetwatch/profiles"
    """Directory of the directory store: one YAML file per profile."""

    @field_validator("collapse_prefixes")
    @classmethod
    def _unique_prefixes(cls, value: tuple[CollapsePrefix, ...]) -> tuple[CollapsePrefix, ...]:
        seen: set[str] = set()
        for item in value:
            if not item.prefix.startswith("/"):
                raise ValueError(f"prefix {item.prefix!r} must be absolute")
            if item.prefix in seen:
                raise ValueError(f"prefix {item.prefix!r} is listed twice")
            seen.add(item.prefix)
        return value
