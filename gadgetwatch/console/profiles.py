"""The Profiles pages: what each workload normally does, read from the CLI's own stores.

The console reads the same `ProfileStore` the agents write and `gadgetwatch profile` reads
(the directory store, or ApplicationProfile resources through the Kubernetes API), and derives
nothing of its own: content lines, diffs, the seccomp profile, the NetworkPolicy and the
securityContext advice come from `profiler.diffing`, `profiler.seccomp`, `profiler.netpol` and
`profiler.advice`, so the console and the CLI always agree.

Learning progress is (last update − learning start) / learning period, in the profile's own
event time: the store knows when the agent last wrote, not what the node's clock says now.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gadgetwatch.console.chart import fmt_time
from gadgetwatch.console.html import Markup, clip, escape, join, link, render
from profiler import advice, diffing, netpol, seccomp
from profiler.documents import dump_yaml
from profiler.errors import NotFoundError, ProfilerError
from profiler.generalizing import generalized_entries
from profiler.profiles import Profile
from profiler.status import ProfileStatus
from profiler.store import ProfileStore

#: The path segment standing for the empty namespace of host profiles (as `profile list`).
HOST_NS = "-"

#: Content categories, by the first word of `diffing.entry_lines`, in display order.
CATEGORIES = (
    ("exec", "Executables"),
    ("open", "Files"),
    ("egress", "Network: outgoing (peers with identities)"),
    ("ingress", "Network: incoming"),
    ("dns", "DNS"),
    ("capability", "Capabilities"),
    ("syscall", "Syscalls"),
)


def ref(p: Profile) -> str:
    return f"{p.key.namespace or HOST_NS}/{p.name}"


def progress(p: Profile) -> float:
    """Learning progress in [0, 1] (1 once learning ended)."""
    meta = p.meta
    if meta.status is not ProfileStatus.LEARNING:
        return 1.0
    if meta.learning_period_ns <= 0 or not meta.learning_start_ns:
        return 0.0
    done = (meta.updated_ns - meta.learning_start_ns) / meta.learning_period_ns
    return min(max(done, 0.0), 1.0)


async def find(store: ProfileStore, namespace: str, name: str) -> Profile:
    ns = "" if namespace == HOST_NS else namespace
    profiles, errors = await store.list(ns)
    for profile in profiles:
        if profile.name == name and profile.key.namespace == ns:
            return profile
    for error in errors:
        if name in error.obj:
            raise error
    raise NotFoundError("no such profile", obj=f"{namespace}/{name}")


def status_badge(p: Profile) -> Markup:
    status = p.meta.status.value
    user = " (user)" if p.meta.managed_by.value == "user" else ""
    return render('<span class="status st-{s}">{s}{u}</span>', s=status, u=user)


def progress_cell(p: Profile) -> Markup:
    if p.meta.status is not ProfileStatus.LEARNING:
        return Markup('<span class="muted">done</span>')
    pct = round(progress(p) * 100)
    return render('<progress max="100" value="{v}">{v}%</progress> {v}%', v=pct)


def list_body(profiles: Sequence[Profile], errors: Sequence[ProfilerError]) -> Markup:
    rows = join(
        render(
            '<tr class="profile-row"><td class="ns">{ns}</td><td>{name}</td><td class="wl">{wl}'
            '</td><td>{c}</td><td>{st}</td><td>{pr}</td><td class="num">{n}</td>'
            "<td>{updated}</td></tr>",
            ns=clip(p.key.namespace or HOST_NS, 63),
            name=link(f"/profiles/{ref(p)}", clip(p.name, 80), cls="open-profile"),
            wl=clip(f"{p.key.owner_kind}/{p.key.owner_name}", 80),
            c=clip(p.key.container, 63),
            st=status_badge(p),
            pr=progress_cell(p),
            n=p.entries.total(),
            updated=fmt_time(p.meta.updated_ns) if p.meta.updated_ns else "-",
        )
        for p in profiles
    )
    problems = join(render('<li class="error">{e}</li>', e=str(e)) for e in errors)
    options = join(
        render('<option value="{r}">{t}</option>', r=ref(p), t=clip(ref(p), 100)) for p in profiles
    )
    diff_form = render(
        '<form method="get" action="/profiles/diff" class="filters" id="diff-form">'
        '<label>Before <select name="a" id="diff-a">{o}</select></label>'
        '<label>After <select name="b" id="diff-b">{o}</select></label>'
        '<button type="submit" id="diff-go">Compare</button></form>',
        o=options,
    )
    table = (
        render(
            '<table class="profiles" id="profiles"><thead><tr><th class="ns">Namespace</th>'
            '<th>Name</th><th class="wl">Workload</th><th>Container</th><th>Status</th>'
            '<th>Learning</th><th class="num">Entries</th><th>Updated</th></tr></thead>'
            "<tbody>{rows}</tbody></table>",
            rows=rows,
        )
        if profiles
        else Markup('<p class="muted">No profiles in this store.</p>')
    )
    return render(
        "<h1>Profiles</h1>{table}{problems}<h2>Compare two profiles</h2>{diff}",
        table=table,
        problems=render('<ul class="problems">{p}</ul>', p=problems) if errors else Markup(""),
        diff=diff_form if len(profiles) > 1 else Markup('<p class="muted">Needs two.</p>'),
    )


def _categorised(lines: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {key: [] for key, _ in CATEGORIES}
    for line in lines:
        word, _, rest = line.partition(" ")
        out.setdefault(word, []).append(rest)
    return out


def detail_body(p: Profile, store_name: str) -> Markup:
    meta = p.meta
    facts = [
        ("Workload", p.key.display()),
        ("Status", render("{b} {r}", b=status_badge(p), r=meta.reason or "")),
        ("Learning", progress_cell(p)),
        ("Owner", meta.managed_by.value),
        ("Series", meta.series),
        ("Images", ", ".join(sorted(meta.images)) or "-"),
        ("Store", store_name),
        (
            "Entries",
            ", ".join(f"{k} {v}" for k, v in p.entries.counts().items()) or "-",
        ),
    ]
    from gadgetwatch.console.pages import kv_table

    entries = p.entries
    general = list(generalized_entries(entries.execs, entries.opens, entries.dns))
    sections = []
    for key, title in CATEGORIES:
        items = _categorised(diffing.entry_lines(entries)).get(key, [])
        body = (
            render(
                '<ul class="entries">{li}</ul>',
                li=join(render('<li><div class="value">{t}</div></li>', t=i) for i in items),
            )
            if items
            else Markup('<p class="muted">none</p>')
        )
        sections.append(
            render(
                '<section class="category" id="cat-{k}"><h2>{t} <span class="muted">({n})</span>'
                "</h2>{b}</section>",
                k=key,
                t=title,
                n=len(items),
                b=body,
            )
        )
    gen = (
        render(
            '<section><h2>Generalised</h2><ul class="entries">{li}</ul></section>',
            li=join(render("<li>{k}: {t}</li>", k=k.value, t=t) for k, t in general),
        )
        if general
        else Markup("")
    )
    base = f"/profiles/{ref(p)}"
    downloads = render(
        '<p class="downloads">Download: {s} · {n} · {a} <span class="muted">(from an '
        "unfinished profile the server refuses; add ?force=1 to derive anyway)</span></p>",
        s=link(f"{base}/seccomp.json", "seccomp profile", cls="dl-seccomp"),
        n=link(f"{base}/networkpolicy.yaml", "NetworkPolicy", cls="dl-netpol"),
        a=link(f"{base}/securitycontext.yaml", "securityContext advice", cls="dl-advice"),
    )
    return render(
        '<h1 class="profile-title">Profile {r}</h1>{facts}{downloads}{gen}{sections}',
        r=ref(p),
        facts=kv_table(facts),
        downloads=downloads,
        gen=gen,
        sections=join(sections),
    )


def diff_body(before: Profile, after: Profile) -> Markup:
    d = diffing.diff(before, after)
    lines = diffing.format_diff(d)

    def cls(line: str) -> str:
        return {"+": "add", "-": "del", "~": "chg"}.get(line[:1], "")

    body = (
        render(
            '<ul class="diff" id="diff">{li}</ul>',
            li=join(
                render('<li class="{c}"><div class="value">{t}</div></li>', c=cls(x), t=x)
                for x in lines
            ),
        )
        if lines
        else Markup('<p id="diff" class="muted">The two profiles are the same.</p>')
    )
    return render(
        '<h1>Diff</h1><p>{a} → {b}: <span class="del">{r} only before</span>, '
        '<span class="add">{n} only after</span>.</p>{body}',
        a=link(f"/profiles/{ref(before)}", ref(before)),
        b=link(f"/profiles/{ref(after)}", ref(after)),
        r=sum(1 for x in lines if x.startswith("-")),
        n=sum(1 for x in lines if x.startswith("+")),
        body=body,
    )


def download(p: Profile, what: str, *, force: bool) -> tuple[str, str, str]:
    """(body, content type, file name) of a derived artefact; raises ProfilerError."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in p.name)[:100]
    if what == "seccomp.json":
        body, _ = seccomp.seccomp_profile(p, complain=False, force=force)
        return json.dumps(body, indent=2) + "\n", "application/json", f"{safe}-seccomp.json"
    if what == "networkpolicy.yaml":
        policy, _ = netpol.network_policy(p, force=force)
        return dump_yaml(policy), "application/yaml", f"{safe}-networkpolicy.yaml"
    if what == "securitycontext.yaml":
        lines, _ = advice.advise(p, force=force)
        data: dict[str, Any] = {
            "securityContext": advice.security_context(lines),
            "evidence": [
                {"setting": line.setting, "value": line.value, "evidence": line.evidence}
                for line in lines
            ],
        }
        return dump_yaml(data), "application/yaml", f"{safe}-securitycontext.yaml"
    raise NotFoundError("no such download", obj=what)


def error_body(message: str) -> Markup:
    return render('<h1>Profiles</h1><p class="error">{m}</p>', m=escape(message))
