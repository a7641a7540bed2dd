"""The root configuration: one typed, frozen object composed of each package's section.

Each domain package owns its section (`<pkg>/config.py`); this module adds the sections that
belong to the composition root (`kubernetes`, `pipeline`) and the loading entry point,
`load_settings`, which applies defaults < YAML < environment < flags (see `settings_loading`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, model_validator

from detector.config import DetectorSettings
from exporters.config import ExportersSettings, ListenerSettings, MetricsSettings
from gadgetclient.config import SETTINGS_CONFIG, GadgetClientSettings
from gadgetclient.durations import Duration, format_duration
from gadgetclient.textsafety import REDACTED, redact_urls
from gadgetwatch.settings_loading import deep_merge, env_layer, read_yaml_file, validate
from profiler.config import ProfilerSettings


def _on_off(value: object) -> object:
    """YAML 1.1 reads an unquoted `on`/`off` as a boolean; take it back as the word."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


class KubernetesSettings(BaseModel):
    model_config = SETTINGS_CONFIG

    mode: Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)] = "auto"
    """`auto` uses the cluster when in-cluster credentials or a kubeconfig are found, `on`
    requires it (start fails without it), `off` is host mode: profiles in a directory, bindings
    and exceptions from files."""

    kubeconfig: str = ""
    """Path of a kubeconfig; empty means in-cluster credentials, then `~/.kube/config`."""

    api_server: str = ""
    """Explicit API server URL (overrides the kubeconfig's); used for tests and odd set-ups."""

    node_name: str = ""
    """This agent's node; the pod cache watches only pods scheduled here. The chart sets it
    from the downward API (`spec.nodeName`)."""

    api_concurrency: int = Field(default=4, ge=1, le=64)
    """Threads for Kubernetes client calls. The official client is synchronous; 4 covers the
    pod watch, the rule watchers and profile writes without letting a slow API server pile up
    threads."""


#: Most worker processes. Every worker receives and maps every event (its own streams), so
#: with a per-event cost of r for that and p for the rest, N workers sustain 1 / (r + p / N)
#: events/s: at the measured r ≈ p / 2 (docs/gadgetclient.md), 8 workers reach 80% of the
#: limit 1 / r, while IG's send cost keeps growing with N. Past 8, add nodes' worth of IG
#: filters (`operator.KubeManager.*` params) instead.
MAX_WORKERS = 8


class PipelineSettings(BaseModel):
    model_config = SETTINGS_CONFIG

    queue_batches: int = Field(default=256, ge=1, le=100_000)
    """Bound of the processing queue, in batches. With `batchSize` 256 this holds about 65k
    events, several seconds of a busy node: enough to ride out a profile flush or a GC pause,
    small enough to cap memory (about 1 KiB per event)."""

    batch_size: int = Field(default=256, ge=1, le=65_536)
    """Events per batch between stages. Batching amortises the per-item cost of asyncio
    queues, which dominates at 100k events/s."""

    batch_delay: Duration = timedelta(milliseconds=20)
    """Longest time a partial batch waits before it is handed on; bounds the latency that
    batching adds to an alert."""

    shutdown_deadline: Duration = timedelta(seconds=20)
    """Time allowed on SIGTERM to stop the sources, drain the queues, flush profiles and close
    exporters. Kubernetes' default grace period is 30 s; 20 s leaves room for the rest."""

    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    """Worker processes. 1 runs everything in one process. N > 1 starts a supervisor and N
    workers; each worker runs every gadget stream and keeps the events of the containers it
    owns (a hash of its workload), with its own profiler, detector and exporters
    (README "Design notes", docs/gadgetclient.md). Rate limits are divided among the workers.
    Not with headless or attached instances, `--replay` or `--events` (one reader each)."""

    worker_restart_initial: Duration = Field(
        default=timedelta(seconds=1), ge=timedelta(milliseconds=10)
    )
    """Wait before restarting a worker that crashed; doubles per crash in a row up to
    `workerRestartMax`, and starts again from here after a worker ran for a minute."""

    worker_restart_max: Duration = Field(default=timedelta(seconds=30), ge=timedelta(seconds=0))
    """Longest wait between restarts of a crashing worker: a worker that cannot start (IG
    down) is retried twice a minute without spinning a core."""


#: Longest cluster name: a DNS subdomain (253), which every naming scheme for clusters fits.
CLUSTER_NAME_MAX = 253


class DebugSettings(ListenerSettings):
    """The on-demand debug listener: CPU profile, memory snapshot, asyncio task dump
    (docs/debugging.md). Off by default; `GADGETWATCH_DEBUG_ENDPOINTS=1` turns it on."""

    default_host: ClassVar[str] = "127.0.0.1"

    enabled: bool = False
    """Open the debug listener. Nothing is sampled or traced until a request asks for it."""

    address: str = "127.0.0.1:6060"
    """`host:port` of the debug listener, apart from `/metrics`. Loopback, because a profile
    shows code paths and memory contents: reach it with `kubectl port-forward`. 6060 is the
    port Go agents conventionally serve pprof on."""

    max_seconds: int = Field(default=300, ge=1, le=3600)
    """Longest CPU profile or allocation trace one request may ask for: 5 minutes covers any
    periodic work (profile flushes, rule refreshes) without letting a forgotten request keep
    the profiler on indefinitely."""

    sample_interval: Duration = Field(
        default=timedelta(milliseconds=10), ge=timedelta(milliseconds=1)
    )
    """Time between CPU samples. 10 ms (100 samples/s, the rate of Go's pprof and py-spy)
    gives 1,000 samples in a 10 s profile, plenty for a flame graph; each sample makes the
    event loop hand over the GIL, so faster sampling costs more (`benchmarks/bench_debug.py`
    measures the overhead at this value)."""


class Settings(BaseModel):
    model_config = SETTINGS_CONFIG

    cluster_name: str = Field(
        default="", max_length=CLUSTER_NAME_MAX, pattern=r"^[^\x00-\x1f\x7f]*$"
    )
    """Name of this cluster, carried by every alert: `cluster` in JSON alerts and webhook
    bodies, `cluster` in the syslog `alert@PEN` structured data, the `cluster` label in
    AlertManager. Empty by default (the field is then empty and the label absent): set it when
    one receiver serves several clusters. Helm: the value `config.clusterName`. Not read from
    the environment (only sections are)."""

    gadgetclient: GadgetClientSettings = GadgetClientSettings()
    """Where Inspektor Gadget runs, which gadgets to subscribe to and how."""

    profiler: ProfilerSettings = ProfilerSettings()
    """Learning application profiles and where they are stored."""

    detector: DetectorSettings = DetectorSettings()
    """Rules, bindings, exceptions and alert deduplication."""

    exporters: ExportersSettings = ExportersSettings()
    """Alert destinations. With none enabled, alerts go to stdout as JSON lines."""

    metrics: MetricsSettings = MetricsSettings()
    """The Prometheus `/metrics`, `/healthz` and `/readyz` endpoint."""

    kubernetes: KubernetesSettings = KubernetesSettings()
    """Access to the Kubernetes API (pod cache, profile and rule resources)."""

    pipeline: PipelineSettings = PipelineSettings()
    """Queues and batching between the stages."""

    debug: DebugSettings = DebugSettings()
    """On-demand CPU profile, memory snapshot and asyncio task dump on a separate listener."""

    @model_validator(mode="after")
    def _workers_fit(self) -> Settings:
        gc = self.gadgetclient
        if self.pipeline.workers > 1 and (gc.headless.enabled or gc.attach):
            raise ValueError(
                "pipeline.workers > 1 cannot share headless or attached instances: each "
                "worker runs its own streams; use workers: 1 with instances"
            )
        return self


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Compose and validate the layers; raises `ConfigError` listing every problem."""
    data: dict[str, Any] = {}
    source = "config"
    if config_file is not None:
        data = read_yaml_file(config_file)
        source = str(config_file)
    if environ is not None:
        data = deep_merge(data, env_layer(environ))
    if overrides:
        data = deep_merge(data, overrides)
    return validate(Settings, data, source=source)


def dump_settings(settings: Settings) -> dict[str, Any]:
    """YAML-ready mapping with camelCase keys and durations written like `24h`.

    Secrets are masked and URLs lose their user information and query values (`redact_url`):
    the output is shown on terminals and pasted into tickets.
    """

    def conv(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return REDACTED
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, str):
            return redact_urls(value)
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: conv(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [conv(v) for v in value]
        if isinstance(value, timedelta):
            return format_duration(value)
        return value

    return dict(conv(settings.model_dump(mode="python", by_alias=True)))
