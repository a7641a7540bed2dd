"""Alert delivery and metrics: stdout, syslog, HTTP webhook, AlertManager, OTLP, Prometheus.

    detector ─submit(alert)─► Delivery ─► one bounded queue + task per exporter ─► destination
    domain stats (plain counters) ─► metrics.StatsCollector (at scrape time) ─► /metrics

Modules: `config` (settings), `errors`, `exporter` (the protocol), `delivery` (queues, retries,
shutdown, health), `limiting` (per-minute cap), `building` (`build_exporters`), one module per
destination (`stdout`, `syslog`, `http`, `alertmanager`, `otlp` with `otlp_metrics` for the
agent's own metrics), `transport` (HTTP plumbing
shared by the webhook, AlertManager and OTLP/HTTP), `encoding` (JSON that cannot fail),
`metrics` (collectors and the HTTP server).

The exporter contract (RFC 2119 keywords; enforced by `tests/exporters/test_compliance.py`,
which runs every exporter through it):

Delivery
1. Submitting an alert MUST NOT block, await or raise. `Delivery.submit` MUST return after
   queueing the alert for every exporter, whatever state any destination is in.
2. Each exporter MUST have its own bounded queue and its own task. A slow or dead destination
   MUST NOT delay detection or any other exporter; it MAY lose its own alerts, counted.
3. When an exporter's queue is full, the newest alert MUST be dropped for that exporter and
   counted as `dropped{exporter, reason="queue_full"}`.
4. An exporter's `send(batch)` MUST either deliver the whole batch or raise `SendError`; it
   MUST NOT retry by itself, and it MUST NOT be called concurrently with itself.
5. A transient failure (connection refused or reset, timeout, HTTP 408, 429 or 5xx, a gRPC
   code OTLP lists as retryable such as UNAVAILABLE) MUST be retried with exponential backoff
   with jitter, bounded by `retryMaxBackoff`. Retries SHOULD
   go on while the agent runs (`retryMaxAttempts: 0`); if bounded, the batch MUST be counted as
   `dropped{reason="retries_exhausted"}`. Alerts queued behind a retried batch wait, so a
   destination that comes back MUST receive everything that fitted in the queue, in order.
6. A permanent failure (HTTP 4xx other than 408 and 429, any other gRPC code such as
   INVALID_ARGUMENT) MUST NOT be retried; its batch MUST be
   counted as `dropped{reason="permanent_error"}`. An unexpected exception from an exporter MUST
   be treated the same way (`reason="exporter_error"`), so that a bug cannot wedge a queue.
7. Delivery is at-least-once: a batch whose outcome is unknown (a timeout after the peer
   received it) MAY be delivered twice. Receivers SHOULD deduplicate by the alert's `id`
   (the same on every attempt; `fingerprint` is shared by the repeats of one finding), and
   AlertManager does so by labels.

Counting (`exporters.stats.DeliveryStats`, exported by `metrics`)
8. Every alert submitted MUST end up in exactly one of `sent{exporter}` or
   `dropped{exporter, reason}` once `aclose` returns: nothing is lost silently.
9. Every failed attempt MUST be counted in `failed{exporter, reason}` (`transient`, `permanent`,
   `error`); retries of one batch count once per attempt; retried alerts are not drops.
10. `up{exporter}` MUST be 1 after a successful send or probe and 0 after a failed one, and
    `queue_depth{exporter}` MUST follow the queue. Label values MUST be bounded: exporter names
    come from the configuration, reasons from the closed lists above.
11. `maxAlertsPerMinute`, when set, MUST be announced by exactly one "limit reached" system
    alert per limited one-minute window; every alert held back MUST be counted as
    `dropped{reason="rate_limit"}`.

Health and faults
12. Building an exporter MUST NOT touch the network. An unreachable destination at start MUST
    NOT stop the agent: it MUST be reported (an error log, `up=0`, `health()` details used by
    `/readyz`) and retried; its destination SHOULD be probed again every `healthcheckInterval`.
13. Alert text is hostile. No string in an alert (newlines, control characters, quotes,
    brackets, lone surrogates, megabytes of arguments) MAY break a JSON document or line, a
    syslog frame or structured-data element, or AlertManager's label rules. Secrets (headers,
    tokens, passwords) MUST NOT appear in logs or error messages.

Shutdown
14. `Delivery.aclose(deadline_s)` MUST stop accepting alerts (counting late ones as
    `dropped{reason="shutdown"}`), let each task drain its queue until the deadline, count what
    is still queued or in flight as `dropped{reason="shutdown"}`, then close every exporter.
15. `aclose` of `Delivery` and of every exporter MUST be idempotent; `send` after `aclose` MUST
    raise a permanent `SendError`.

Metrics
16. Metric names MUST follow `gadgetwatch_<component>_<name>_<unit>[_total]`, MUST be listed in
    `metrics.METRICS` and `docs/metrics.md`, and MUST NOT carry a container id, pod name, or
    message as a label value.
"""
