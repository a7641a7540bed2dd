"""Process-aware profiles: who reached each open, DNS name and egress entry while learning.

Learning (bounds, unknown executables, the annotation), merge (a join: commutative,
idempotent, any-process absorbing), collapse (folded entries keep the union), documents (round
trip, the CRD, old documents, hostile executable strings) and the read model's answers.
"""

from __future__ import annotations

import dataclasses
import itertools

import jsonschema
import pytest
import yaml

from gadgetclient.events import Container, OpenEvent, PeerIdentity, Process
from gadgetclient.processes import ExecTable
from profiler.advice import advise
from profiler.cache import CompiledProfile
from profiler.diffing import entry_lines
from profiler.documents import dump_yaml, from_document, to_document
from profiler.errors import InvalidProfileError
from profiler.exporting import imported
from profiler.identity import peer_key
from profiler.merging import merge_entries, merged, subtract
from profiler.netpol import network_policy
from profiler.profiles import ANY_PROCESS, ANY_PROCESS_SET, Entries, Profile
from profiler.readmodel import ProfileStatus
from profiler.seccomp import seccomp_profile
from profiler.store import ProfileStore
from tests.profiler.helpers import T0, FakePods, S, connect, container, dns, exec_, learner
from tests.profiler.test_cli import completed
from tests.profiler.test_documents import schema

CAT = "/bin/cat"
SH = "/bin/sh"
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def by(c: Container, ts: int, pid: int, event: OpenEvent) -> OpenEvent:
    """`event` as done by `pid` (whose exe IG did not report: the learner must know it)."""
    return dataclasses.replace(event, timestamp_ns=ts, process=Process(pid=pid, comm="x"))


def open_by(c: Container, ts: int, pid: int, path: str, *flags: str) -> OpenEvent:
    return OpenEvent(
        timestamp_ns=ts, container=c, process=Process(pid=pid, comm="x"), path=path, flags=flags
    )


def exec_pid(c: Container, ts: int, pid: int, path: str) -> object:
    return dataclasses.replace(exec_(c, ts, path), process=Process(pid=pid, uid=101))


def learned(store: ProfileStore, events: list[object], **overrides: object) -> Profile:
    lr = learner(store, process_aware=True, **overrides)  # type: ignore[arg-type]
    lr.observe(events)  # type: ignore[arg-type]
    keys = lr.keys()
    assert len(keys) == 1
    profile = lr.profile(keys[0])
    assert profile is not None
    return profile


def test_learning_records_the_executable_of_opens_dns_and_egress(store: ProfileStore) -> None:
    c = container()
    db = PeerIdentity(kind="pod", name="db-0", namespace="shop")
    events: list[object] = [
        exec_pid(c, T0 + S, 10, CAT),
        open_by(c, T0 + 2 * S, 10, TOKEN, "O_RDONLY"),
        exec_pid(c, T0 + 3 * S, 11, "/usr/bin/pg_dump"),
        dataclasses.replace(
            connect(c, T0 + 4 * S, "10.1.0.7", 5432, db), process=Process(pid=11, comm="pg_dump")
        ),
        dataclasses.replace(
            dns(c, T0 + 5 * S, "db.example.com", "52.31.20.5"),
            process=Process(pid=11, comm="pg_dump"),
        ),
        # The same open again by the same process changes nothing.
        open_by(c, T0 + 6 * S, 10, TOKEN, "O_RDONLY"),
    ]
    profile = learned(store, events)
    e = profile.entries
    assert e.open_procs == {TOKEN: frozenset({CAT})}
    assert e.egress_procs == {("10.1.0.7", 5432, "TCP", db): frozenset({"/usr/bin/pg_dump"})}
    assert e.dns_procs == {"db.example.com": frozenset({"/usr/bin/pg_dump"})}
    # The exec path (not the comm) is what is recorded; the entries themselves are unchanged.
    assert e.opens[TOKEN] == frozenset({"O_RDONLY"})


def test_a_pid_that_execs_again_is_judged_by_its_new_executable(store: ProfileStore) -> None:
    c = container()
    events: list[object] = [
        exec_pid(c, T0 + S, 10, SH),
        open_by(c, T0 + 2 * S, 10, "/etc/a", "O_RDONLY"),
        exec_pid(c, T0 + 3 * S, 10, CAT),  # `exec cat` in the shell: same pid, new image
        open_by(c, T0 + 4 * S, 10, "/etc/b", "O_RDONLY"),
    ]
    e = learned(store, events).entries
    assert e.open_procs == {"/etc/a": frozenset({SH}), "/etc/b": frozenset({CAT})}


def test_past_the_bound_an_entry_allows_any_process_and_it_is_counted(
    store: ProfileStore,
) -> None:
    c = container()
    lr = learner(store, process_aware=True, max_processes_per_entry=3)
    events: list[object] = []
    for k in range(5):
        events.append(exec_pid(c, T0 + (2 * k + 1) * S, 100 + k, f"/usr/bin/tool{k}"))
        events.append(open_by(c, T0 + (2 * k + 2) * S, 100 + k, "/etc/hosts", "O_RDONLY"))
    lr.observe(events)  # type: ignore[arg-type]
    profile = lr.profile(lr.keys()[0])
    assert profile is not None
    assert profile.entries.open_procs["/etc/hosts"] is ANY_PROCESS_SET
    assert lr.stats.process_scope_dropped == {"overflow": 1}


def test_an_unknown_executable_makes_the_entry_any_process_counted(store: ProfileStore) -> None:
    c = container()
    lr = learner(store, process_aware=True)
    # pid 77 never exec'd in view (started before the agent): who it is cannot be told.
    lr.observe([exec_pid(c, T0 + S, 10, CAT), open_by(c, T0 + 2 * S, 10, TOKEN, "O_RDONLY"),  # type: ignore[list-item]
                open_by(c, T0 + 3 * S, 77, TOKEN, "O_RDONLY"),
                open_by(c, T0 + 4 * S, 77, "/etc/other", "O_RDONLY")])  # fmt: skip
    profile = lr.profile(lr.keys()[0])
    assert profile is not None
    assert profile.entries.open_procs == {TOKEN: ANY_PROCESS_SET, "/etc/other": ANY_PROCESS_SET}
    assert lr.stats.process_scope_dropped == {"unknown_executable": 2}


@pytest.mark.parametrize(
    ("annotation", "setting", "expected", "errors"),
    [
        ("true", False, True, 0),
        ("False", True, False, 0),
        ("yes please", True, True, 1),  # a bad value: counted, the setting applies
        (None, False, False, 0),
    ],
)
def test_the_pod_annotation_chooses_per_workload(
    store: ProfileStore, annotation: str | None, setting: bool, expected: bool, errors: int
) -> None:
    c = container()
    notes = {"gadgetwatch.io/process-aware": annotation} if annotation is not None else {}
    lr = learner(store, process_aware=setting, pods=FakePods(annotations={c.pod: notes}))
    lr.observe([exec_pid(c, T0 + S, 10, CAT), open_by(c, T0 + 2 * S, 10, TOKEN, "O_RDONLY")])  # type: ignore[list-item]
    profile = lr.profile(lr.keys()[0])
    assert profile is not None
    assert bool(profile.entries.open_procs) is expected
    assert lr.stats.errors[("annotation", "invalid")] == errors


async def test_flush_writes_the_process_sets_and_reads_them_back(store: ProfileStore) -> None:
    c = container()
    lr = learner(store, process_aware=True)
    lr.observe([exec_pid(c, T0 + S, 10, CAT), open_by(c, T0 + 2 * S, 10, TOKEN, "O_RDONLY")])  # type: ignore[list-item]
    await lr.flush()
    # A second flush with only a new process for a known entry writes it too.
    lr.observe([exec_pid(c, T0 + 3 * S, 11, SH), open_by(c, T0 + 4 * S, 11, TOKEN, "O_RDONLY")])  # type: ignore[list-item]
    await lr.flush()
    stored, errors = await store.list("shop")
    assert not errors
    assert stored[0].entries.open_procs == {TOKEN: frozenset({CAT, SH})}


# -- merge -----------------------------------------------------------------------------------


def _entries(opens: dict[str, frozenset[str] | None]) -> Entries:
    e = Entries()
    for path, procs in opens.items():
        e.add_open(path, ("O_RDONLY",))
        if procs is not None:
            e.open_procs[path] = procs
    return e


SIDES = [
    _entries({"/a": frozenset({CAT})}),
    _entries({"/a": frozenset({SH}), "/b": frozenset({CAT})}),
    _entries({"/a": None}),  # learned with the option off: any process
    _entries({"/b": ANY_PROCESS_SET}),
    Entries(open_procs={"/a": frozenset({"/usr/bin/env"})}),  # a delta: the set only
]


@pytest.mark.parametrize(("i", "j"), list(itertools.product(range(len(SIDES)), repeat=2)))
def test_merge_is_commutative_and_idempotent(i: int, j: int) -> None:
    a, b = SIDES[i], SIDES[j]
    ab, ba = a.copy(), b.copy()
    merge_entries(ab, b)
    merge_entries(ba, a)
    assert ab.open_procs == ba.open_procs
    again = ab.copy()
    merge_entries(again, ab)
    assert again.open_procs == ab.open_procs


def test_merge_unions_and_any_process_absorbs() -> None:
    out = SIDES[0].copy()
    merge_entries(out, SIDES[1])
    assert out.open_procs == {"/a": frozenset({CAT, SH}), "/b": frozenset({CAT})}
    merge_entries(out, SIDES[2])
    assert "/a" not in out.open_procs  # the other side allowed any process there
    merge_entries(out, SIDES[3])
    assert out.open_procs["/b"] is ANY_PROCESS_SET


def test_subtract_shows_new_executables_of_known_entries() -> None:
    before, after = SIDES[0], SIDES[1]
    extra = subtract(after, before)
    assert extra.open_procs == {"/a": frozenset({SH}), "/b": frozenset({CAT})}
    assert "open /a by /bin/sh" in entry_lines(extra)
    assert subtract(after, SIDES[2]).open_procs == {"/b": frozenset({CAT})}


# -- collapse --------------------------------------------------------------------------------


def test_collapsed_paths_keep_the_union_of_their_processes(store: ProfileStore) -> None:
    c = container()
    events: list[object] = [exec_pid(c, T0 + S, 10, "/usr/bin/app"),
                            exec_pid(c, T0 + 2 * S, 11, "/usr/bin/worker")]  # fmt: skip
    for k in range(25):  # /tmp collapses past 20 children
        events.append(open_by(c, T0 + (3 + k) * S, 10 + k % 2, f"/tmp/s{k}x", "O_RDWR"))
    events.append(open_by(c, T0 + 40 * S, 10, "/etc/app.conf", "O_RDONLY"))
    events.append(open_by(c, T0 + 2 * 3600 * S, 10, "/etc/x", "O_RDONLY"))  # ends learning
    lr = learner(store, process_aware=True)
    lr.observe(events)  # type: ignore[arg-type]
    profile = lr.profile(lr.keys()[0])
    assert profile is not None
    assert profile.meta.status is ProfileStatus.COMPLETED
    e = profile.entries
    assert e.open_procs == {
        "/tmp/⋯": frozenset({"/usr/bin/app", "/usr/bin/worker"}),
        "/etc/app.conf": frozenset({"/usr/bin/app"}),
    }
    view = CompiledProfile(profile)
    assert view.open_sources("/tmp/anything") == frozenset({"/usr/bin/app", "/usr/bin/worker"})


def test_dns_names_folded_into_a_wildcard_keep_their_processes(store: ProfileStore) -> None:
    c = container()
    events: list[object] = [exec_pid(c, T0 + S, 10, "/usr/bin/fetch")]
    for k, label in enumerate(("a1b2c3", "d4e5f6", "a7b8c9", "f1e2d3", "b9c8a7")):
        event = dns(c, T0 + (2 + k) * S, f"{label}.edge.cdn.example.com", "1.2.3.4")
        events.append(dataclasses.replace(event, process=Process(pid=10, comm="fetch")))
    events.append(open_by(c, T0 + 2 * 3600 * S, 10, "/etc/x", "O_RDONLY"))  # ends learning
    profile = learned(store, events)
    assert profile.entries.dns_procs == {"*.edge.cdn.example.com": frozenset({"/usr/bin/fetch"})}
    found = CompiledProfile(profile).domain_sources("zz99yy.edge.cdn.example.com")
    assert found == frozenset({"/usr/bin/fetch"})


# -- documents -------------------------------------------------------------------------------

HOSTILE = [
    "/bin/c\nat",
    "/tmp/x: y",
    "/tmp/- *",
    "/tmp/&anchor *alias",
    "/tmp/\u202egnp.exe",
    "/tmp/" + "a" * 4000,
    "/tmp/'\"`$(id)`",
    "/tmp/\x00nul",
]


def aware() -> Profile:
    p = completed()
    e = p.entries
    e.open_procs["/etc/nginx/nginx.conf"] = frozenset({"/usr/sbin/nginx", *HOSTILE})
    e.open_procs["/var/cache/nginx/x"] = ANY_PROCESS_SET
    e.dns_procs["db.staging.svc.cluster.local"] = frozenset({"/usr/sbin/nginx"})
    (egress,) = e.egress
    e.egress_procs[egress] = frozenset({"/usr/bin/pg_dump"})
    return p


def test_documents_round_trip_and_validate_against_the_crd() -> None:
    profile = aware()
    doc = to_document(profile)
    jsonschema.validate(doc, schema())
    assert from_document(doc, source="x") == profile
    # Through YAML text too: hostile strings survive quoting untouched.
    text = dump_yaml(doc)
    back = from_document(yaml.safe_load(text), source="x")
    assert back.entries.open_procs["/etc/nginx/nginx.conf"] >= set(HOSTILE)
    opens = doc["spec"]["containers"][0]["opens"]
    assert [o.get("processes") for o in opens][1] == [ANY_PROCESS]


def test_profiles_without_processes_serialise_as_before_and_mean_any_process() -> None:
    doc = to_document(completed())
    container_ = doc["spec"]["containers"][0]
    items = [*container_["opens"], *container_["dns"], *container_["networkActivity"]["outgoing"]]
    assert all("processes" not in item for item in items)
    view = CompiledProfile(from_document(doc, source="x"))
    assert not view.process_aware
    assert view.open_sources("/etc/nginx/nginx.conf") is None


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("opens", [], "must not be empty"),
        ("opens", [""], "must not be empty"),
        ("opens", [7], "expected a string"),
        ("opens", "/bin/cat", "expected a list"),
        ("incoming", ["/bin/cat"], "only outgoing entries record processes"),
    ],
)
def test_bad_process_lists_are_named(where: str, value: object, message: str) -> None:
    doc = to_document(aware())
    c = doc["spec"]["containers"][0]
    target = c["networkActivity"]["incoming"][0] if where == "incoming" else c["opens"][0]
    target["processes"] = value
    with pytest.raises(InvalidProfileError, match=message) as info:
        from_document(doc, source="ns/x")
    assert "processes" in str(info.value)


def test_an_entry_written_twice_with_and_without_processes_allows_any() -> None:
    doc = to_document(aware())
    opens = doc["spec"]["containers"][0]["opens"]
    opens.append({"path": opens[0]["path"], "flags": ["O_RDONLY"]})
    profile = from_document(doc, source="x")
    assert opens[0]["path"] not in profile.entries.open_procs


def test_the_read_model_answers_per_resource() -> None:
    view = CompiledProfile(merged(aware(), aware()))
    assert view.process_aware
    assert view.open_sources("/etc//nginx/nginx.conf") == frozenset({"/usr/sbin/nginx", *HOSTILE})
    assert view.open_sources("/var/cache/nginx/x") is None  # any process
    assert view.open_sources("/not/known") is None
    assert view.domain_sources("DB.staging.svc.cluster.local.") == frozenset({"/usr/sbin/nginx"})
    assert view.egress_sources("10.1.0.7", 5432, "tcp") == frozenset({"/usr/bin/pg_dump"})
    (egress,) = aware().entries.egress
    assert view.peer_sources(peer_key(egress[3], egress[0]), 5432) == frozenset(
        {"/usr/bin/pg_dump"}
    )
    assert view.peer_sources(peer_key(egress[3], egress[0]), 5433) is None
    assert view.sources_under("/etc/nginx") == frozenset({"/usr/sbin/nginx", *HOSTILE})
    assert view.sources_under("/var/cache") is None


def test_profile_show_lists_who_reached_each_entry() -> None:
    lines = entry_lines(aware().entries)
    assert "open /var/cache/nginx/x O_CREAT,O_WRONLY by any process" in lines
    assert any(
        line.startswith("egress pod staging/db-0 5432/TCP by /usr/bin/pg_dump") for line in lines
    )
    # Control characters of a hostile executable are escaped on the terminal.
    nginx = next(line for line in lines if line.startswith("open /etc/nginx/nginx.conf"))
    assert "\n" not in nginx
    assert "\u202e" not in nginx


def test_importing_into_another_namespace_keeps_each_entrys_processes() -> None:
    p = completed()
    p.key = dataclasses.replace(p.key, namespace="staging")
    p.entries.dns_procs["db.staging.svc.cluster.local"] = frozenset({"/usr/bin/psql"})
    (egress,) = p.entries.egress
    p.entries.egress_procs[egress] = frozenset({"/usr/bin/pg_dump"})
    out = imported(p, namespace="prod").entries
    assert out.dns_procs == {"db.prod.svc.cluster.local": frozenset({"/usr/bin/psql"})}
    (moved,) = out.egress
    assert moved[3].namespace == "prod"
    assert out.egress_procs == {moved: frozenset({"/usr/bin/pg_dump"})}


def test_seccomp_networkpolicy_and_advice_ignore_the_process_dimension() -> None:
    plain, aware_ = completed(), aware()
    assert seccomp_profile(aware_) == seccomp_profile(plain)
    assert network_policy(aware_, force=True) == network_policy(plain, force=True)
    assert advise(aware_, force=True) == advise(plain, force=True)


def test_the_process_table_is_bounded_and_counts_what_it_forgets() -> None:
    c = container()
    table = ExecTable(max_entries=2)
    for pid, exe in ((1, "/bin/a"), (2, "/bin/b"), (1, "/bin/c"), (3, "/bin/d")):
        table.record(exec_pid(c, T0, pid, exe))  # type: ignore[arg-type]
    # pid 2 was the least recently started: forgotten, counted; pid 1 runs its new image.
    assert table.evictions == {"capacity": 1}
    assert table.get(c.key, 2) is None
    assert table.exe_of(open_by(c, T0, 1, "/x")) == "/bin/c"
    assert table.exe_of(open_by(c, T0, 3, "/x")) == "/bin/d"
    # A failed exec changes nothing; an unresolved executable is unknown, never its argv[0].
    failed = dataclasses.replace(exec_pid(c, T0, 3, "/bin/e"), error="ENOENT")  # type: ignore[type-var]
    table.record(failed)  # type: ignore[arg-type]
    assert table.exe_of(open_by(c, T0, 3, "/x")) == "/bin/d"
    table.record(exec_pid(c, T0, 3, "unresolved:evil"))  # type: ignore[arg-type]
    assert table.exe_of(open_by(c, T0, 3, "/x")) == ""


def test_past_the_bound_the_container_that_exec_d_least_recently_forgets_its_oldest() -> None:
    a, b = container(cid="a"), container(cid="b", pod="web-5d4f-fghij")
    table = ExecTable(max_entries=3)
    for c, pid, exe in ((a, 1, "/bin/a1"), (b, 1, "/bin/b1"), (b, 2, "/bin/b2")):
        table.record(exec_pid(c, T0, pid, exe))  # type: ignore[arg-type]
    # The same image again changes nothing (no re-ordering): `a` still exec'd least recently.
    table.record(exec_pid(a, T0, 1, "/bin/a1"))  # type: ignore[arg-type]
    table.record(exec_pid(b, T0, 3, "/bin/b3"))  # type: ignore[arg-type]
    assert table.get(a.key, 1) is None
    assert len(table) == 3
    # `a` is empty and gone, `b` exec'd least recently: its oldest exec goes.
    table.record(exec_pid(a, T0, 2, "/usr/lib/../bin/a2"))  # type: ignore[arg-type]
    assert table.get(b.key, 1) is None
    assert table.exe_of(open_by(a, T0, 2, "/x")) == "/usr/bin/a2"  # normalised
    table.record(exec_pid(a, T0, 2, "/usr/bin/a2"))  # type: ignore[arg-type]
    assert [table.get(b.key, p) for p in (2, 3)] == [("/bin/b2", ""), ("/bin/b3", "")]
    assert table.evictions == {"capacity": 2}
    assert len(table) == 3


async def test_replicas_under_the_bound_together_over_it_store_any_process(
    store: ProfileStore,
) -> None:
    # Two nodes learn the same workload; each sees two executables open /etc/hosts (the
    # bound is 3), four together: the stored entry allows any process, counted at the write.
    nodes = []
    for n, c in enumerate((container(cid="c1"), container(cid="c2", pod="web-5d4f-xyz"))):
        lr = learner(store, process_aware=True, max_processes_per_entry=3)
        events: list[object] = []
        for k in range(2):
            pid = 10 + k
            events.append(exec_pid(c, T0 + (2 * k + 1) * S, pid, f"/usr/bin/n{n}tool{k}"))
            events.append(open_by(c, T0 + (2 * k + 2) * S, pid, "/etc/hosts", "O_RDONLY"))
        lr.observe(events)  # type: ignore[arg-type]
        profile = lr.profile(lr.keys()[0])
        assert profile is not None
        assert len(profile.entries.open_procs["/etc/hosts"]) == 2
        nodes.append(lr)
    for lr in nodes:
        await lr.flush()
    stored, errors = await store.list("shop")
    assert not errors
    assert stored[0].entries.open_procs["/etc/hosts"] is ANY_PROCESS_SET
    assert sum(lr.stats.process_scope_dropped["overflow"] for lr in nodes) == 1
