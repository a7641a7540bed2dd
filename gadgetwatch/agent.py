"""The agent: builds every stage from `Settings` and runs them as one supervised unit.

    GadgetSource (IG streams, or the replay server for --replay)
        └─► Pipeline (batch, bounded queue) ─► Learner.observe ─► Detector.evaluate
                                                                       └─► Delivery (per exporter)
    side tasks: Learner.run (periodic flush), store.watch → ProfileCache (read model),
                PodCache (Kubernetes), ClusterRulesSource (bindings and exceptions),
                MetricsServer (/metrics, /healthz, /readyz)

Lifecycle. Every task is named and supervised: a side task that ends unexpectedly stops the
agent with a clear message and a non-zero exit (Kubernetes restarts it). SIGTERM/SIGINT, or the
end of a replayed capture, start the shutdown in this order, bounded by
`pipeline.shutdownDeadline`: stop the sources (graceful: final flushes are read), drain the
pipeline queue, flush profiles, close the exporters (they drain their own queues), stop the
metrics server. Profile writes that fail while the store is unavailable stay pending in the
learner (bounded by the profile caps) and are retried at the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from detector.config import DetectorSettings
from detector.errors import RuleSourceError
from detector.evaluating import Detector
from detector.rules import Catalogue
from detector.ruleset import RuleSet, base_catalogue, configured_files, load_files
from detector.stats import DetectorStats
from exporters.building import build_exporters
from exporters.config import ExportersSettings
from exporters.delivery import Delivery
from exporters.errors import ExporterError
from exporters.exporter import Exporter
from exporters.metrics import MetricsServer, StatsCollector, build_registry
from exporters.otlp import OtlpExporter
from exporters.otlp_metrics import OtlpMetricsPusher
from exporters.stats import DeliveryStats
from gadgetclient.capture import CapturePodMetadata, read_capture
from gadgetclient.linesource import LineSource
from gadgetclient.replay import ReplayServer
from gadgetclient.sharding import Shard
from gadgetclient.source import GadgetSource
from gadgetclient.stats import StreamStats
from gadgetwatch import __version__
from gadgetwatch.config import Settings
from gadgetwatch.debugging import DebugServer
from gadgetwatch.pipeline import Pipeline, PipelineStats
from profiler.cache import ProfileCache
from profiler.dirstore import DirectoryStore
from profiler.identity import NoPodMetadata, PodMetadata
from profiler.learning import Learner
from profiler.stats import ProfilerStats
from profiler.store import ProfileStore

log = structlog.get_logger(__name__)


class AgentError(Exception):
    """The agent cannot start or had to stop; the message says why, in one line."""


@dataclass
class AgentStats:
    stream: StreamStats = field(default_factory=StreamStats)
    profiler: ProfilerStats = field(default_factory=ProfilerStats)
    detector: DetectorStats = field(default_factory=DetectorStats)
    delivery: DeliveryStats = field(default_factory=DeliveryStats)
    pipeline: PipelineStats = field(default_factory=PipelineStats)


class _SourceClock:
    """The gadget source's event time, for a learner built before the source."""

    source: GadgetSource | None = None

    @property
    def event_clock_ns(self) -> int:
        return self.source.event_clock_ns if self.source is not None else 0

    @property
    def first_event_ns(self) -> int:
        return self.source.first_event_ns if self.source is not None else 0


@dataclass
class _Kube:
    """The cluster-facing pieces, present only when Kubernetes is in use."""

    client: Any
    pods: Any
    rules: Any | None


class Agent:
    """Create with settings, then `await run()`; `request_stop()` begins a graceful stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        replay: Path | None = None,
        replay_rate: float | None = None,
        environ: Mapping[str, str] | None = None,
        install_signal_handlers: bool = True,
        events: str | None = None,
        events_gadget: str = "",
        shard: Shard | None = None,
    ) -> None:
        self.settings = settings
        #: As worker `shard.index` of a supervisor (`workers.py`): the containers this one keeps.
        self.shard = shard
        #: `--events -|FILE`: IG's JSON output as the source instead of gRPC (`linesource.py`).
        self.events = events
        self.events_gadget = events_gadget
        self.line_source: LineSource | None = None
        self.replay = replay
        self.replay_rate = replay_rate
        self.environ = dict(environ or {})
        self.install_signal_handlers = install_signal_handlers
        self.stats = AgentStats()
        self.learner: Learner | None = None
        self.cache: ProfileCache | None = None
        #: The server behind `/metrics` and `/readyz` once built; `metrics` is set when it
        #: listens (a worker's is read by its supervisor instead, `workers.py`).
        self.health: MetricsServer | None = None
        self.registry: CollectorRegistry | None = None
        self._base_catalogue: Catalogue | None = None
        self.metrics: MetricsServer | None = None
        self.debug: DebugServer | None = None
        self.metrics_pusher: OtlpMetricsPusher | None = None
        #: capture lines of the replayed gadgets (progress of a replay), once it is read
        self.replay_total: int | None = None
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        self._closing: list[Any] = []

    def request_stop(self) -> None:
        self._stop.set()

    # -- assembly --------------------------------------------------------------------------

    async def _kube(self) -> _Kube | None:
        mode = self.settings.kubernetes.mode
        if mode == "off" or (self.replay is not None and mode == "auto"):
            return None
        from gadgetwatch import k8s

        ks = self.settings.kubernetes
        try:
            client = k8s.KubeClient.from_settings(
                kubeconfig=ks.kubeconfig, api_server=ks.api_server, max_workers=ks.api_concurrency
            )
        except k8s.KubernetesError as exc:
            if mode == "on":
                raise AgentError(f"kubernetes: {exc}") from exc
            log.info("no kubernetes configuration found, running in host mode", reason=str(exc))
            return None
        if not ks.node_name:
            await client.aclose()
            raise AgentError(
                "kubernetes.nodeName is required in a cluster (the chart sets it from "
                "spec.nodeName); set it or use kubernetes.mode=off"
            )
        pods = k8s.PodCache(client, node_name=ks.node_name)
        return _Kube(client=client, pods=pods, rules=None)

    def _store(self, kube: _Kube | None) -> ProfileStore:
        ps = self.settings.profiler
        if ps.store.value == "kubernetes":
            if kube is None:
                raise AgentError(
                    "profiler.store is kubernetes but no cluster is configured; "
                    "use --profiles-dir for the directory store"
                )
            from profiler.k8s_store import KubernetesStore

            return KubernetesStore(
                kube.client.api_client,
                threads=self.settings.kubernetes.api_concurrency,
                writes_per_second=ps.writes_per_second,
            )
        return DirectoryStore(Path(ps.directory))

    def _exporters_settings(self) -> ExportersSettings:
        ex = self.settings.exporters
        if any(ch.enabled for ch in (ex.stdout, ex.syslog, ex.http, ex.alertmanager, ex.otlp)):
            return ex
        # No destination configured: alerts go to stdout as JSON lines.
        return ex.model_copy(update={"stdout": ex.stdout.model_copy(update={"enabled": True})})

    def file_rules(self) -> RuleSet | None:
        """The bindings and exceptions files, loaded before anything starts.

        A bindings file that yields no binding with at least one valid rule would silently
        replace the built-in binding with nothing: every rule, signatures included, off. That
        is a start-up error naming the file and its first problems, never a quiet "no rules".
        """
        ds = self.settings.detector
        files = configured_files(ds)
        if not files:
            return None
        catalogue = self._catalogue()
        try:
            ruleset = load_files(files, catalogue=catalogue)
            bound = (
                load_files([ds.bindings_file], catalogue=catalogue)
                if ds.bindings_file is not None
                else None
            )
        except RuleSourceError as exc:
            raise AgentError(str(exc)) from exc
        if bound is not None and not any(b.rules for b in bound.bindings):
            first = "; ".join(str(p) for p in bound.errors[:3]) or "it holds no binding"
            raise AgentError(
                f"{ds.bindings_file}: no valid binding, so no rule would run ({first}); "
                "fix it (`gadgetwatch rules check` lists every problem) or unset "
                "detector.bindingsFile to use the built-in binding"
            )
        return ruleset

    def check_rules(self) -> None:
        """Load the rule catalogue and the rule files as `run` would; `AgentError` when one
        is unusable (a supervisor checks them once before starting its workers)."""
        self._catalogue()
        self.file_rules()

    def _catalogue(self) -> Catalogue:
        """The base rule catalogue (built-in Python rules, or `detector.ruleCatalogueDir`),
        loaded once; a broken CEL catalogue is a start-up error."""
        if self._base_catalogue is None:
            try:
                self._base_catalogue = base_catalogue(self.settings.detector)
            except RuleSourceError as exc:
                raise AgentError(str(exc)) from exc
        return self._base_catalogue

    def _metrics_pusher(
        self, exporters: list[Exporter], registry: CollectorRegistry
    ) -> OtlpMetricsPusher | None:
        """The agent's metrics over OTLP, through the OTLP exporter, when asked for."""
        otlp = next((e for e in exporters if isinstance(e, OtlpExporter)), None)
        if otlp is None or not otlp.channel.export_metrics:
            return None
        resource = {"service.name": otlp.channel.service_name, "service.version": __version__}
        resource.update(otlp.channel.resource_attributes)
        if self.settings.kubernetes.node_name:
            resource["k8s.node.name"] = self.settings.kubernetes.node_name
        if self.settings.cluster_name:
            resource["k8s.cluster.name"] = self.settings.cluster_name
        return OtlpMetricsPusher(
            otlp, collector=registry, stats=self.stats.delivery, resource=resource
        )

    # -- run -------------------------------------------------------------------------------

    async def run(self) -> int:
        s = self.settings
        stats = self.stats
        file_rules = self.file_rules()
        replay_server: ReplayServer | None = None
        captured_pods: CapturePodMetadata | None = None
        tmpdir: tempfile.TemporaryDirectory[str] | None = None
        gc_settings = s.gadgetclient
        if self.replay is not None:
            capture = read_capture(self.replay)
            if capture.pods:
                captured_pods = CapturePodMetadata(capture.pods)
            tmpdir = tempfile.TemporaryDirectory(prefix="gadgetwatch-replay-")
            address = f"unix://{tmpdir.name}/ig.socket"
            # Started inside the supervised block below, so a failure while assembling the
            # other stages (a bad bindings file, a busy metrics port) leaves nothing running.
            replay_server = ReplayServer(capture, listen=address, rate=self.replay_rate)
            gadgets = tuple(g for g in gc_settings.gadgets if g in replay_server.gadgets)
            self.replay_total = sum(1 for line in capture.lines if line.gadget in gadgets)
            gc_settings = gc_settings.model_copy(update={"target": address, "gadgets": gadgets})
            log.info("replaying capture", capture=str(self.replay), gadgets=list(gadgets))

        kube = await self._kube()
        # Without Kubernetes, a replayed capture's pod records stand in for the pod cache.
        pod_metadata: PodMetadata = NoPodMetadata()
        if kube is not None:
            pod_metadata = kube.pods
        elif captured_pods is not None:
            pod_metadata = captured_pods
        store = self._store(kube)
        cache = ProfileCache(stats.profiler)
        clock = _SourceClock()
        learner = Learner(
            settings=s.profiler,
            store=store,
            cache=cache,
            pod_metadata=pod_metadata,
            stats=stats.profiler,
            # A worker sees only its containers' events; the others' still move event time.
            event_clock=clock if self.shard is not None else None,
        )
        self.learner, self.cache = learner, cache
        detector_settings = s.detector
        if kube is not None and not detector_settings.api_server_addresses:
            detector_settings = await self._with_api_server(kube, detector_settings)
        detector = Detector(
            settings=detector_settings,
            catalogue=self._catalogue(),
            profiles=cache,
            pod_metadata=pod_metadata,
            stats=stats.detector,
            cluster_name=s.cluster_name,
            report_repeats=True,
        )
        if file_rules is not None:
            detector.update_rules("file", file_rules)
        exporters = build_exporters(
            self._exporters_settings(),
            stats=stats.delivery,
            environ=self.environ,
            agent_version=__version__,
        )
        delivery = Delivery(exporters, stats=stats.delivery, settings=s.exporters)
        source: GadgetSource | LineSource
        if self.events is not None:
            stream = (
                sys.stdin.buffer
                if self.events == "-"
                else await asyncio.to_thread(open, self.events, "rb")
            )
            self._closing.append(stream)
            source = self.line_source = LineSource(
                stream,
                gadget=self.events_gadget,
                stats=stats.stream,
                name="stdin" if self.events == "-" else self.events,
            )
        else:
            source = GadgetSource(
                gc_settings,
                stats=stats.stream,
                k8s_api_client=kube.client.api_client if kube is not None else None,
                shard=self.shard,
            )
            clock.source = source
        pipeline = Pipeline(
            profiler=learner,
            detector=detector,
            sink=delivery.submit,
            repeats=detector.take_repeats,
            repeat_sink=delivery.note_repeats,
            stats=stats.pipeline,
            queue_batches=s.pipeline.queue_batches,
            batch_size=s.pipeline.batch_size,
            batch_delay_s=s.pipeline.batch_delay.total_seconds(),
        )
        cache_synced = asyncio.Event()
        collector = StatsCollector(
            stream=stats.stream,
            profiler=stats.profiler,
            detector=stats.detector,
            delivery=stats.delivery,
            pipeline=stats.pipeline,
        )
        registry = self.registry = build_registry(collector)
        self.metrics_pusher = self._metrics_pusher(exporters, registry)
        health = self.health = MetricsServer(s.metrics, registry=registry)
        health.add_readiness_check("gadgets", lambda: gadgets_readiness(source))
        health.add_readiness_check(
            "profiles", lambda: profiles_readiness(cache_synced.is_set(), learner)
        )
        health.add_readiness_check("exporters", lambda: exporters_readiness(delivery.health()))
        if kube is not None:
            pods = kube.pods
            health.add_readiness_check("pod-cache", lambda: (pods.ready.is_set(), {}))
        if s.metrics.enabled:
            self.metrics = health
            try:
                await self.metrics.start()
            except (OSError, ExporterError) as listen_error:
                if kube is not None:
                    await kube.client.aclose()
                cause = listen_error.__cause__ or listen_error
                reason = cause.strerror if isinstance(cause, OSError) else None
                raise AgentError(
                    f"cannot serve metrics on {s.metrics.address}: {reason or cause}; "
                    "choose another address with --metrics-address HOST:PORT "
                    "(metrics.address) or turn metrics off with --no-metrics"
                ) from listen_error
        if s.debug.enabled:
            self.debug = DebugServer(s.debug)
            try:
                await self.debug.start()
            except OSError as debug_error:
                self.debug = None
                if self.metrics is not None:
                    await self.metrics.aclose()
                if kube is not None:
                    await kube.client.aclose()
                raise AgentError(str(debug_error)) from debug_error

        if kube is not None and s.detector.watch_cluster:
            from detector.k8s_source import ClusterRulesSource

            kube.rules = ClusterRulesSource(
                kube.client.api_client,
                catalogue=detector.catalogue,
                on_update=lambda rs: detector.update_rules("cluster", rs),
                stats=stats.detector,
            )

        self._install_signals()
        flush_stop = asyncio.Event()
        # Headless or attached instances: the seq handled per instance is persisted with each
        # profile flush, so a restarted agent skips what their ring buffers replay.
        instances = gc_settings.headless.enabled or bool(gc_settings.attach)
        side: dict[str, Coroutine[Any, Any, None]] = {
            "profile-flush": learner.run(
                flush_stop, before_flush=_seq_commit(source, pipeline) if instances else None
            ),
            "profile-watch": store.watch(cache),
        }
        if self.metrics_pusher is not None:
            side["otlp-metrics"] = self.metrics_pusher.run()
        if kube is not None:
            side["pod-cache"] = kube.pods.run()
            side["plan-refresh"] = self._refresh_plans(kube.pods, detector)
            if kube.rules is not None:
                side["rule-watch"] = kube.rules.run()
        await delivery.start()
        side_tasks = [asyncio.create_task(c, name=n) for n, c in side.items()]
        processing: asyncio.Task[None] | None = None
        source_task: asyncio.Task[None] | None = None
        stop_wait = asyncio.create_task(self._stop.wait(), name="stop-signal")
        exit_code = 0
        failure = ""
        try:
            if replay_server is not None:
                await replay_server.start()
            # Existing profiles (an imported production profile, other nodes' learning), the
            # cluster's bindings and exceptions, and the node's pods must be known before the
            # first event is judged or merged. Each wait is bounded: a slow API server delays
            # detection by at most the deadline, then the agent starts with what it has.
            waits: dict[str, Coroutine[Any, Any, Any]] = {"profile-watch": cache.wait_synced()}
            if kube is not None:
                waits["pod-cache"] = kube.pods.ready.wait()
                if kube.rules is not None:
                    waits["rule-watch"] = kube.rules.synced.wait()
            await self._wait_ready(waits, side_tasks)
            cache_synced.set()
            processing = asyncio.create_task(pipeline.run(), name="processing")
            source_task = asyncio.create_task(
                source.run(pipeline.feed, on_checkpoint=pipeline.checkpoint if instances else None),
                name="gadget-source",
            )
            done, _ = await asyncio.wait(
                [source_task, processing, stop_wait, *side_tasks],
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                if task is stop_wait:
                    log.info("stop requested")
                elif task is source_task:
                    exc = task.exception()
                    if exc is not None:
                        failure = f"gadget source failed: {exc}"
                    else:
                        log.info("all gadget streams ended")
                else:
                    exc = task.exception()
                    failure = f"stage {task.get_name()} stopped unexpectedly: {exc!r}"
            if failure:
                log.error("agent stopping after a failure", reason=failure)
                exit_code = 1
        finally:
            await self._shutdown(
                source=source,
                source_task=source_task,
                pipeline=pipeline,
                processing=processing,
                learner=learner,
                flush_stop=flush_stop,
                delivery=delivery,
                side_tasks=[*side_tasks, stop_wait],
                kube=kube,
                store=store,
            )
            if replay_server is not None:
                await replay_server.stop(0)
            if tmpdir is not None:
                tmpdir.cleanup()
            for f in self._closing:
                if f is not sys.stdin.buffer:
                    f.close()
        if failure:
            raise AgentError(failure)
        lost = incomplete(self)
        if lost:
            log.error("run incomplete", problems=lost)
            return EXIT_INCOMPLETE
        return exit_code

    @staticmethod
    async def _refresh_plans(pods: Any, detector: Detector) -> None:
        """Recompile the detector's per-container plans when the pod cache changes.

        A plan holds the pod's labels (binding scope), volume mounts (R0002, R1004) and owner;
        one compiled from an event that arrived before the pod's watch event would otherwise
        keep stale inputs. Pod changes on a node are rare (a few a minute), recompiling is
        cheap, so every change invalidates every plan.
        """
        while True:
            seen = pods.generation
            await pods.wait_until(lambda seen=seen: pods.generation != seen)
            detector.invalidate()

    async def _with_api_server(self, kube: _Kube, settings: DetectorSettings) -> DetectorSettings:
        """R0007 needs the API server's addresses; read them once from `default/kubernetes`."""
        from gadgetwatch import k8s

        try:
            found = await k8s.api_server_addresses(kube.client)
        except k8s.KubernetesError as exc:
            log.warning("API server addresses unknown, R0007 uses IG's peer data", error=str(exc))
            return settings
        return settings.model_copy(update={"api_server_addresses": tuple(sorted(found.ips))})

    async def _wait_ready(
        self, waits: dict[str, Coroutine[Any, Any, Any]], side_tasks: list[asyncio.Task[Any]]
    ) -> None:
        """Wait for each named side task's first sync, bounded by the shutdown deadline.

        A side task that dies while we wait is a start failure; one that is merely slow is
        logged and the agent starts with what it has (detection is better late than never).
        """
        by_name = {t.get_name(): t for t in side_tasks}
        pending = {asyncio.create_task(c, name=f"ready:{n}"): n for n, c in waits.items()}
        deadline = self.settings.pipeline.shutdown_deadline.total_seconds()
        try:
            async with asyncio.timeout(deadline):
                while pending:
                    watched = [by_name[n] for n in pending.values() if n in by_name]
                    done, _ = await asyncio.wait(
                        [*pending, *watched], return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        if task in pending:
                            del pending[task]
                        else:
                            exc = task.exception() if not task.cancelled() else None
                            raise AgentError(f"{task.get_name()} failed at start: {exc!r}")
        except TimeoutError:
            log.warning("starting before every source synced", waiting=sorted(pending.values()))
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _install_signals(self) -> None:
        if not self.install_signal_handlers:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)

    async def _shutdown(
        self,
        *,
        source: GadgetSource | LineSource,
        source_task: asyncio.Task[None] | None,
        pipeline: Pipeline,
        processing: asyncio.Task[None] | None,
        learner: Learner,
        flush_stop: asyncio.Event,
        delivery: Delivery,
        side_tasks: list[asyncio.Task[Any]],
        kube: _Kube | None,
        store: ProfileStore,
    ) -> None:
        deadline = time.monotonic() + self.settings.pipeline.shutdown_deadline.total_seconds()

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        # 1. Sources: graceful stop reads the final flushes (advise_seccomp's last window).
        if source_task is not None:
            if not source_task.done():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left()):
                        await source.stop()
                if not source_task.done():
                    source_task.cancel()
            await asyncio.gather(source_task, return_exceptions=True)
        # 2. Drain the processing queue.
        if processing is not None:
            try:
                async with asyncio.timeout(left()):
                    await pipeline.close()
                    await processing
            except TimeoutError:
                self.stats.pipeline.dropped[("processing", "shutdown")] += pipeline.backlog
                log.error(
                    "processing queue not drained before the deadline", batches=pipeline.backlog
                )
                processing.cancel()
            await asyncio.gather(processing, return_exceptions=True)
        # 3. Profiles: close learning periods that ended in event time, write every delta.
        flush_stop.set()
        flush_task = next((t for t in side_tasks if t.get_name() == "profile-flush"), None)
        if flush_task is not None:
            try:
                async with asyncio.timeout(left()):
                    await asyncio.gather(flush_task, return_exceptions=True)
            except TimeoutError:
                log.error("profile flush did not finish before the deadline")
        # 4. The final values of the agent's metrics, then the exporters drain their own queues
        #    within what is left.
        if self.metrics_pusher is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left()):
                    await self.metrics_pusher.push()
        await delivery.aclose(left())
        # 5. Everything else.
        for task in side_tasks:
            task.cancel()
        await asyncio.gather(*side_tasks, return_exceptions=True)
        await store.aclose()
        if kube is not None:
            with contextlib.suppress(Exception):
                await kube.pods.aclose()
            await kube.client.aclose()
        if self.metrics is not None:
            await self.metrics.aclose()
        if self.debug is not None:
            await self.debug.aclose()
        log.info("agent stopped", uptime_s=round(time.monotonic() - self._started, 3))


#: Flush rounds in a row with a failed write before /readyz reports the store as failing: one
#: failed round can be a conflict storm or an API server restart; two update periods in a row
#: (2 min by default) mean the store does not take writes (a full disk, lost permissions).
STORE_FAILING_ROUNDS = 2


def _seq_commit(
    source: GadgetSource | LineSource, pipeline: Pipeline
) -> Callable[[], Callable[[], None]]:
    """Before a profile flush: what the processing task has reached; after it succeeded: that
    position written to the instance seq state (events up to it are in the stored profiles)."""

    def before() -> Callable[[], None]:
        reached = dict(pipeline.processed_checkpoint)

        def commit() -> None:
            if not reached:
                return
            try:
                source.seq_state.save(reached)
            except OSError as exc:
                source.stats.state_write_errors += 1
                log.error("instance seq state not written", reason=str(exc))

        return commit

    return before


def gadgets_readiness(source: GadgetSource | LineSource) -> tuple[bool, dict[str, Any]]:
    """The streams' readiness (grace period included) with the gadgets that run without a
    parameter we rely on (an older IG)."""
    ready, details = source.readiness()
    return ready, {**details, **_params_details(source.degraded_params())}


def profiles_readiness(synced: bool, learner: Learner) -> tuple[bool, dict[str, Any]]:
    """Ready once the store's profiles are loaded, while the store takes the learner's writes."""
    pending = len(learner.unpersisted())
    details: dict[str, Any] = {
        "synced": synced,
        "pendingProfiles": pending,
        "failedFlushRounds": learner.failed_rounds,
        "lastWriteError": learner.last_write_error,
    }
    return synced and learner.failed_rounds < STORE_FAILING_ROUNDS, details


def exporters_readiness(health: dict[str, dict[str, Any]]) -> tuple[bool, dict[str, Any]]:
    """Not ready only when every destination is failing: then no alert can leave the node.

    One dead destination among others (an HA AlertManager member, a webhook down while syslog
    works) is shown in the details but does not take the pod out of its Service, so its
    metrics stay scraped while the losses are counted.
    """
    failing = [name for name, h in health.items() if h["state"] == "failing"]
    return not health or len(failing) < len(health), health


#: Exit codes of `gadgetwatch run`: 0 ran and stopped cleanly, 1 failed (start or run time),
#: 2 configuration or usage error, 3 ran but lost data on the way out: profiles not persisted
#: or alerts not delivered (details in the log and the `--summary`).
EXIT_INCOMPLETE = 3


def incomplete(agent: Agent) -> list[str]:
    """What did not reach its destination by the end of the run, one phrase each."""
    out: list[str] = []
    if agent.learner is not None:
        pending = agent.learner.unpersisted()
        if pending:
            error = agent.learner.last_write_error
            out.append(
                f"{len(pending)} profile(s) not persisted" + (f" ({error})" if error else "")
            )
    st = agent.stats
    dropped = {
        reason: n
        for (_, reason), n in st.delivery.dropped.items()
        if n and reason != "rate_limit"  # configured limits, announced by their own alert
    }
    if dropped:
        total = sum(dropped.values())
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(dropped.items()))
        out.append(f"{total} alert delivery(ies) dropped ({reasons})")
    unprocessed = st.pipeline.dropped.get(("processing", "shutdown"), 0)
    if unprocessed:
        out.append(f"{unprocessed} event batch(es) not processed before the deadline")
    return out


def bad_lines_summary(agent: Agent) -> list[str]:
    """`--events` input lines that were not usable, with their line numbers."""
    src = agent.line_source
    if src is None or not src.bad_lines:
        return []
    total = sum(n for (_, r), n in agent.stats.stream.dropped.items() if r == "bad_line")
    shown = ", ".join(f"{n} ({reason})" for n, reason in src.bad_lines[:10])
    more = "" if total <= 10 else f" and {total - 10} more"
    return [f"  bad input lines: {total}: line {shown}{more}"]


def summary_lines(agent: Agent) -> list[str]:
    """A short human summary for `--summary`: profiles learned, alerts by rule, losses."""
    st = agent.stats
    lines = ["gadgetwatch summary"]
    lines.append(
        f"  events: received {sum(st.stream.decoded.values())}, "
        f"processed {st.pipeline.processed}, "
        f"lost upstream {sum(st.stream.lost.values())}, "
        f"dropped {sum(st.stream.dropped.values()) + sum(st.pipeline.dropped.values())}"
    )
    if agent.learner is not None:
        keys = agent.learner.keys()
        by_status: dict[str, int] = {}
        for key in keys:
            prof = agent.learner.profile(key)
            if prof is not None:
                status = str(prof.meta.status)
                by_status[status] = by_status.get(status, 0) + 1
        shown = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
        lines.append(f"  profiles: {len(keys)} ({shown})")
    alerts = st.detector.alerts
    lines.append(f"  alerts: {sum(alerts.values())}")
    for rule, n in sorted(alerts.items()):
        lines.append(f"    {rule}: {n}")
    by_reason: dict[str, int] = {}
    for (_, reason), n in st.detector.suppressed.items():
        by_reason[reason] = by_reason.get(reason, 0) + n
    if by_reason:
        shown = ", ".join(f"{reason} {n}" for reason, n in sorted(by_reason.items()))
        lines.append(f"  not alerted: {shown}")
    delivered = sum(st.delivery.sent.values())
    dropped = sum(st.delivery.dropped.values())
    lines.append(f"  delivered: {delivered} alert(s) to exporters, {dropped} dropped")
    if agent.learner is not None:
        lines.append(f"  profiles not persisted: {len(agent.learner.unpersisted())}")
    problems = incomplete(agent)
    lines += bad_lines_summary(agent)
    lines.append("  INCOMPLETE: " + "; ".join(problems) if problems else "  complete: yes")
    return lines


def _params_details(degraded: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """Readiness details of the gadgets check: gadgets running without params we rely on."""
    return {"paramsDegraded": degraded} if degraded else {}
