"""`gadgetwatch probe`: is this node ready to run the agent? Check everything it depends on.

Like `karmor probe`, it checks what the agent needs and prints one row per check:

* the IG target: reachable, server version (refused below 0.29), and for each configured gadget
  the params the agent will send (`gadgetclient/gadget_params.py`) with whether the server's
  gadget declares each (`warn` when a default is not declared or the user switched it off,
  naming the fields that stay empty and the rules that degrade), and whether the gadget actually
  starts with those params (a short RunGadget that waits for the gadget's GadgetInfo, then stops
  it gracefully) — per node for `k8s://` targets;
* Kubernetes (when configured): API access, each RBAC permission the agent needs
  (SelfSubjectAccessReview) and the CRDs;
* each configured exporter's reachability (its own health check).

A check is `ok`, `warn` (works, but something deserves attention) or `fail`. The exit code is
0 when nothing failed. Every check has its own deadline, so a black-holed endpoint cannot hang
the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from exporters.building import build_exporters
from exporters.errors import ExporterError
from exporters.stats import DeliveryStats
from gadgetclient.config import GadgetClientSettings
from gadgetclient.errors import GadgetClientError
from gadgetclient.gadget_params import ParamPlan, plan_params
from gadgetclient.sessions import Connection, declared_keys, gadget_name, pin_image
from gadgetclient.stats import StreamStats
from gadgetclient.streaming import GadgetStream
from gadgetclient.targets import Endpoint, parse_target, static_endpoints
from gadgetwatch import clikit
from gadgetwatch.config import Settings

#: Time for one gadget to report its GadgetInfo. IG may pull and verify the image on first use,
#: which takes several seconds on a cold node; 20 s covers that without hanging the probe.
GADGET_START_TIMEOUT_S = 20.0
#: Time for one exporter health check (a connect, or one HTTP GET).
EXPORTER_TIMEOUT_S = 5.0


class Verdict(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    area: str
    name: str
    verdict: Verdict
    detail: str = ""


#: Called with each check as soon as it completes (the CLI's progress on a terminal).
Report = Callable[[Check], None]


def _ignore(check: Check) -> None:
    return None


async def probe(settings: Settings, report: Report = _ignore) -> list[Check]:
    checks: list[Check] = []
    checks += await probe_target(settings.gadgetclient, report)
    kube_checks = await probe_kubernetes(settings)
    for check in kube_checks:
        report(check)
    checks += kube_checks
    checks += await probe_exporters(settings, report)
    return checks


@contextlib.asynccontextmanager
async def _endpoints(gc: GadgetClientSettings) -> AsyncIterator[list[Endpoint]]:
    spec = parse_target(gc.target)
    if spec.scheme == "k8s":
        from gadgetclient.k8s import port_forwards

        async with port_forwards(spec, gc) as endpoints:
            yield endpoints
    else:
        yield static_endpoints(spec, gc)


async def probe_target(gc: GadgetClientSettings, report: Report = _ignore) -> list[Check]:
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        report(check)

    try:
        async with _endpoints(gc) as endpoints:
            if not endpoints:
                add(Check("ig", gc.target, Verdict.FAIL, "no IG pod found"))
                return checks
            for endpoint in endpoints:
                await _probe_endpoint(endpoint, gc, add)
    except GadgetClientError as exc:
        add(Check("ig", gc.target, Verdict.FAIL, str(exc)))
    except Exception as exc:  # k8s discovery failures arrive as client exceptions
        add(Check("ig", gc.target, Verdict.FAIL, f"{type(exc).__name__}: {exc}"))
    return checks


async def _probe_endpoint(endpoint: Endpoint, gc: GadgetClientSettings, add: Report) -> None:
    where = endpoint.node or endpoint.address
    conn = Connection(endpoint, gc)
    try:
        try:
            info = await conn.get_info()
        except GadgetClientError as exc:
            add(Check("ig", where, Verdict.FAIL, str(exc)))
            return
        add(Check("ig", where, Verdict.OK, f"reachable, IG v{info.version}"))
        for gadget in gc.gadgets:
            params: dict[str, str] = {}
            try:
                ginfo = await conn.gadget_info(pin_image(gadget, info.version), gc.params)
            except GadgetClientError:
                pass  # the start check below reports the refusal
            else:
                plan = plan_params(gadget_name(gadget), gc.params, declared_keys(ginfo))
                add(params_check(plan, where))
                params = plan.sent
            add(await _probe_gadget(conn, gadget, info.version, where, params))
    finally:
        await conn.close()


def params_check(plan: ParamPlan, where: str) -> Check:
    """One row: every param that will be sent, and whether the server declares it."""

    def declared(key: str) -> str:
        known = plan.is_declared(key)
        return "" if known is None else (" (declared)" if known else " (NOT declared)")

    short = {k: k.removeprefix("operator.oci.ebpf.") for k in plan.sent}
    parts = [f"{short[k]}={v}{declared(k)}" for k, v in plan.sent.items()]
    parts += [f"{p.key.removeprefix('operator.oci.ebpf.')}: NOT declared" for p in plan.unsupported]
    parts += [f"{p.key.removeprefix('operator.oci.ebpf.')}: overridden" for p in plan.overridden]
    detail = ", ".join(parts) or "none"
    name = f"{plan.gadget} params @ {where}"
    if plan.unsupported or plan.overridden:
        lost = f"; empty: {', '.join(plan.missing_fields)}" if plan.missing_fields else ""
        rules = f"; degraded rules: {', '.join(plan.degraded_rules)}" if plan.degraded_rules else ""
        return Check("gadget", name, Verdict.WARN, detail + lost + rules)
    return Check("gadget", name, Verdict.OK, detail)


async def _probe_gadget(
    conn: Connection, gadget: str, version: str, where: str, params: dict[str, str]
) -> Check:
    name = gadget_name(gadget)
    stream = GadgetStream(
        conn,
        gadget=name,
        image=pin_image(gadget, version),
        params=params,
        stats=StreamStats(),
        on_records=lambda *a: None,
    )
    task = asyncio.create_task(stream.run())
    started = asyncio.create_task(stream.started.wait())
    try:
        done, _ = await asyncio.wait(
            [task, started], timeout=GADGET_START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if started in done:
            return Check("gadget", f"{name} @ {where}", Verdict.OK, "runs")
        if task in done:
            exc = task.exception()
            detail = str(exc) if exc is not None else "ended before reporting its layout"
            return Check("gadget", f"{name} @ {where}", Verdict.FAIL, detail)
        return Check(
            "gadget", f"{name} @ {where}", Verdict.FAIL, f"no answer in {GADGET_START_TIMEOUT_S}s"
        )
    finally:
        stream.stop()
        started.cancel()
        try:
            async with asyncio.timeout(GADGET_START_TIMEOUT_S):
                await asyncio.gather(task, return_exceptions=True)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def probe_kubernetes(settings: Settings) -> list[Check]:
    ks = settings.kubernetes
    if ks.mode == "off":
        return [Check("kubernetes", "mode", Verdict.OK, "off (host mode)")]
    from gadgetwatch import k8s

    try:
        kube = k8s.KubeClient.from_settings(
            kubeconfig=ks.kubeconfig, api_server=ks.api_server, max_workers=ks.api_concurrency
        )
    except k8s.KubernetesError as exc:
        verdict = Verdict.FAIL if ks.mode == "on" else Verdict.WARN
        return [Check("kubernetes", "configuration", verdict, f"{exc} (host mode)")]
    checks: list[Check] = []
    try:
        try:
            await kube.call("discover the core API", kube.core.get_api_resources)
            checks.append(Check("kubernetes", "api", Verdict.OK, "reachable"))
        except k8s.KubernetesError as exc:
            return [Check("kubernetes", "api", Verdict.FAIL, str(exc))]
        spec = parse_target(settings.gadgetclient.target)
        gadget_ns = (spec.namespace or "gadget") if spec.scheme == "k8s" else None
        results = await k8s.check_permissions(
            kube, k8s.agent_permissions(gadget_namespace=gadget_ns)
        )
        for r in results:
            verdict = Verdict.OK if r.allowed else Verdict.FAIL
            checks.append(Check("rbac", r.check.display(), verdict, r.detail))
        for crd in await k8s.check_crds(kube, k8s.AGENT_CRDS):
            usable = crd.present and crd.established
            detail = crd.detail or ("established" if usable else "not established")
            checks.append(Check("crd", crd.name, Verdict.OK if usable else Verdict.FAIL, detail))
        if not ks.node_name:
            checks.append(
                Check("kubernetes", "nodeName", Verdict.FAIL, "kubernetes.nodeName is not set")
            )
    finally:
        await kube.aclose()
    return checks


async def probe_exporters(settings: Settings, report: Report = _ignore) -> list[Check]:
    exporters = build_exporters(settings.exporters, stats=DeliveryStats())
    checks: list[Check] = []
    for exporter in exporters:
        try:
            async with asyncio.timeout(EXPORTER_TIMEOUT_S):
                await exporter.healthcheck()
            checks.append(Check("exporter", exporter.name, Verdict.OK, "reachable"))
            report(checks[-1])
        except (ExporterError, TimeoutError, OSError) as exc:
            detail = str(exc) or f"no answer in {EXPORTER_TIMEOUT_S}s"
            checks.append(Check("exporter", exporter.name, Verdict.FAIL, detail))
            report(checks[-1])
        finally:
            with contextlib.suppress(Exception):
                await exporter.aclose()
    if not exporters:
        checks.append(Check("exporter", "stdout", Verdict.OK, "no exporter configured: stdout"))
        report(checks[-1])
    return checks


def render_table(checks: Sequence[Check]) -> str:
    rows = [(c.area, c.name, c.verdict.value.upper(), c.detail) for c in checks]
    return clikit.render_table(("AREA", "CHECK", "RESULT", "DETAIL"), rows)


def check_to_dict(check: Check) -> dict[str, str]:
    return {
        "area": check.area,
        "check": check.name,
        "result": check.verdict.value,
        "detail": check.detail,
    }
