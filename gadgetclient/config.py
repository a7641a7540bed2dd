"""The `gadgetclient` configuration section (`GadgetClientSettings`).

The composition root nests this section under the `gadgetclient` key of the root settings and
passes it, validated and frozen, to `GadgetSource`. Nothing in this package reads the environment.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from gadgetclient.durations import Duration

#: The model configuration of every settings section in the project (this one and those of
#: `profiler`, `detector`, `exporters` and `gadgetwatch`): unknown keys are errors, settings are
#: immutable once loaded, attribute docstrings become `docs/configuration.md`, and YAML keys are
#: camelCase while Python fields stay snake_case.
SETTINGS_CONFIG = ConfigDict(
    extra="forbid",
    frozen=True,
    use_attribute_docstrings=True,
    alias_generator=to_camel,
    populate_by_name=True,
)

DEFAULT_GADGETS: tuple[str, ...] = (
    "trace_exec",
    "trace_open",
    "trace_tcp",
    "trace_dns",
    "trace_capabilities",
    "advise_seccomp",
)


class TlsSettings(BaseModel):
    """mTLS towards an `ig daemon` started with `--tls-key-file`, `--tls-cert-file` and
    `--tls-client-ca-file`."""

    model_config = SETTINGS_CONFIG

    client_key: str = ""
    """Path of the client's PEM private key. All three files are needed to enable TLS."""

    client_cert: str = ""
    """Path of the client's PEM certificate chain."""

    server_ca: str = ""
    """Path of the PEM CA bundle that signed the daemon's certificate."""

    server_name: str = ""
    """Name to verify in the server certificate instead of the target's host (IG's
    `--tls-server-name`); needed when connecting by IP address."""

    @property
    def enabled(self) -> bool:
        return bool(self.client_key or self.client_cert or self.server_ca)


class GadgetClientSettings(BaseModel):
    """Where IG runs, which gadgets to run, and how hard to try."""

    model_config = SETTINGS_CONFIG

    target: str = "unix:///var/run/ig/ig.socket"
    """IG endpoint: `unix:///path`, `tcp://host:port`, or `k8s://[namespace][?node=a,b]` for IG's
    `gadget` DaemonSet reached through the API server's port-forward (one stream per node).
    The default is `ig daemon`'s own default socket."""

    gadgets: tuple[str, ...] = DEFAULT_GADGETS
    """Gadgets to run, by name (`trace_exec`) or by full image reference. A name gets the
    server's version as tag (`trace_exec:v0.55.1`) so the gadget matches the server; an image
    with a tag or digest is used as given."""

    params: dict[str, str] = Field(default_factory=dict)
    """Extra gadget parameters, fully qualified (`operator.KubeManager.namespace: shop`). Sent to
    every gadget; checked against each gadget's declared params when the server reports them."""

    tls: TlsSettings = TlsSettings()
    """mTLS material for `tcp://` targets."""

    connect_timeout: Duration = timedelta(seconds=5)
    """Deadline for reaching the server and for the unary calls (GetInfo, GetGadgetInfo). 5 s is
    the Go client's own connection timeout."""

    stop_timeout: Duration = timedelta(seconds=30)
    """After a stop request, how long to keep reading the final flush before cancelling. 30 s is
    the Go client's `ResultTimeout`."""

    reconnect_initial: Duration = timedelta(milliseconds=500)
    """First back-off delay after a stream fails (an IG pod restarting)."""

    reconnect_max: Duration = timedelta(seconds=30)
    """Ceiling of the exponential back-off; a restarting DaemonSet pod is back within this."""

    seccomp_window: Duration = Field(default=timedelta(seconds=60), gt=timedelta(0))
    """advise_seccomp reports only when stopped, so it runs in rolling windows of this length;
    each window yields one syscall set per container. Shorter windows mean fresher data and more
    gadget restarts."""

    max_receive_message_bytes: int = Field(default=64 * 1024 * 1024, ge=4 * 1024 * 1024)
    """gRPC receive limit. gRPC's 4 MiB default is too small for array data sources and for a
    GadgetInfo that embeds the gadget's metadata; 64 MiB bounds a hostile server."""

    log_level: int = Field(default=4, ge=1, le=6)
    """Highest IG (logrus) severity forwarded by the server: 4 = info, which carries the "lost N
    samples" warnings. 0 is refused because panic logs would encode as type 0 (payload)."""

    process_table_size: int = Field(default=0, ge=0, le=1_000_000)
    """Entries of the exec-history table that fills exe/args/cwd of non-exec events from earlier
    exec events of the same (container, pid); 0 disables it. 65536 covers a busy node."""

    transport: Literal["native", "grpcio"] = "native"
    """How RunGadget streams are received. `native`: gadgetwatch's own HTTP/2 frame loop for
    this one stream (large reads, events read straight from the wire; a fraction of grpcio's
    CPU per event). `grpcio`: grpcio's asyncio client, the fallback. Unary calls (GetInfo,
    GetGadgetInfo) always use grpcio."""

    read_coalesce: Duration = Field(
        default=timedelta(milliseconds=1), ge=timedelta(0), le=timedelta(milliseconds=50)
    )
    """Native transport: after a read that found little data, wait this long before the next
    read so it takes a batch. IG buffers 16384 events per run (about a second at 16k events/s),
    so 1 ms costs no loss and halves the CPU per event; 0 reads as soon as data arrives."""

    port_forward_host: str = "127.0.0.1"
    """Local address of the per-node port-forward bridges of a `k8s://` target."""
