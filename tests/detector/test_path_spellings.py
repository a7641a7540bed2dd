"""No spelling of a sensitive path escapes its rule (issue 21, item 3), fuzzed with hypothesis.

IG without ``--paths`` reports an open's file name as the process passed it. The spellings are
generated the way an attacker would write them: doubled slashes, ``.`` components, detours
through other directories (``x/..``), ``..`` above the root, a trailing slash, and relative
names with the working directory IG reports. Each spelling goes through the IG record mapping
(as in production) and, separately, straight into the rule check (events built elsewhere),
and must hit the rule exactly as the plain path does.
"""

from __future__ import annotations

import posixpath
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.bindings import API_VERSION as BINDING_API
from detector.catalogue_anomaly import SENSITIVE_FILES, TOKEN_DIRS
from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.rules import Rule, RuleEnv, default_catalogue
from detector.stats import DetectorStats
from gadgetclient.events import OpenEvent
from gadgetclient.mapping import RecordMapper
from gadgetclient.pathnorm import is_normal, normalise_path
from profiler.cache import CompiledProfile
from profiler.documents import from_document, to_document
from profiler.profiles import Profile, ProfileMeta
from profiler.readmodel import ProfileStatus
from tests.detector.builders import T0, WEB, WEB_KEY, PodMeta, proc, ruleset

#: Files each rule must catch; R0010's own list, the token files, /proc environ, ld.so.preload.
TARGETS: dict[str, list[str]] = {
    "R0010": [p for p in SENSITIVE_FILES if not p.endswith((".ssh", "pki", "sudoers.d"))],
    "R0006": [d + "/token" for d in TOKEN_DIRS],
    "R0008": ["/proc/1/environ", "/proc/self/environ"],
    "R1011": ["/etc/ld.so.preload"],
}
ALL = [(rule, path) for rule, paths in TARGETS.items() for path in paths]

segment = st.text(alphabet="abcxyz09-_", min_size=1, max_size=6)
noise = st.sampled_from(["", "", ".", "./.", "", "/"])


@st.composite
def spelling(draw: Any, target: str) -> tuple[str, str]:
    """(spelled path, cwd) naming `target`."""
    parts = target.strip("/").split("/")
    out: list[str] = []
    for part in parts:
        out.append(draw(noise))
        if draw(st.booleans()):
            out.append(draw(segment) + "/" + draw(st.sampled_from(["", "./", "/"])) + "..")
        out.append(part)
    body = "/".join(p for p in out if p != "") if draw(st.booleans()) else "/".join(out)
    if draw(st.booleans()):
        body += "/"
    if draw(st.booleans()):
        return "/" + "/" * draw(st.integers(0, 2)) + body, ""
    cwd_parts = draw(st.lists(segment, max_size=4))
    ups = len(cwd_parts) + draw(st.integers(0, 3))
    return "../" * ups + body, "/" + "/".join(cwd_parts)


def _profile() -> CompiledProfile:
    return CompiledProfile(Profile(key=WEB_KEY, meta=ProfileMeta(status=ProfileStatus.COMPLETED)))


class _One:
    def __init__(self, profile: CompiledProfile) -> None:
        self.profile = profile

    def get(self, key: object) -> CompiledProfile:
        return self.profile


def _record(path: str, cwd: str) -> dict[str, Any]:
    """An IG v0.55 trace_open record without --paths (no fpath), with the process's cwd."""
    return {
        "fname": path,
        "cwd": cwd,
        "flags": "O_WRONLY" if "preload" in path else "O_RDONLY",
        "flags_raw": 1,
        "proc": {"comm": "sh", "pid": 7, "creds": {"uid": 0, "gid": 0}},
        "k8s": {"namespace": "shop", "podName": WEB.pod, "containerName": "app"},
        "runtime": {"containerId": WEB.container_id},
        "timestamp_raw": T0,
    }


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_no_spelling_escapes_its_rule(data: st.DataObject) -> None:
    rule_id, target = data.draw(st.sampled_from(ALL))
    spelled, cwd = data.draw(spelling(target))
    rule = default_catalogue().by_id(rule_id)
    assert isinstance(rule, Rule)
    params, _ = rule.resolve_params({})
    check = rule.build(params, RuleEnv())
    flags = ("O_WRONLY",) if rule_id == "R1011" else ("O_RDONLY",)

    # Straight into the rule: the check normalises what it is given.
    direct = OpenEvent(
        timestamp_ns=T0, container=WEB, process=proc("sh", cwd=cwd), path=spelled, flags=flags
    )
    finding = check(direct, _profile())
    assert finding is not None, (spelled, cwd)

    # Through the IG record mapping: the event already carries the normal form.
    mapped = RecordMapper().map("open", _record(spelled, cwd), "node-1")
    assert isinstance(mapped, OpenEvent)
    assert mapped.path == target
    assert check(mapped, _profile()) is not None


@given(path=st.text(alphabet="/.ab", max_size=30), cwd=st.text(alphabet="/.ab", max_size=12))
def test_normal_form_matches_posix_normpath_and_is_stable(path: str, cwd: str) -> None:
    got = normalise_path(path, cwd)
    if not path:
        assert got == ""
        return
    assert normalise_path(got) == got
    # The fast check is sound: whatever it calls normal is left as it is.
    if is_normal(path):
        assert got == path
    base = cwd if cwd.startswith("/") else "/"
    joined = path if path.startswith("/") else base + "/" + path
    assert got == posixpath.normpath("/" + joined.lstrip("/"))


def test_exceptions_and_profiles_match_other_spellings() -> None:
    """An exception written ``/var//cache/app/`` and a profile entry ``/etc/./app.conf``
    allow the normal-form paths the rules compare."""
    exception = (
        "apiVersion: gadgetwatch.io/v1\nkind: RuntimeAlertException\n"
        "metadata: {name: cache}\nspec:\n  allow:\n    paths: [/var//cache/app/]\n"
    )
    binding = (
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\nmetadata: {{name: b}}\n"
        "spec:\n  rules:\n  - ruleID: R0002\n---\n" + exception
    )
    profile = Profile(key=WEB_KEY, meta=ProfileMeta(status=ProfileStatus.COMPLETED))
    profile.entries.add_open("/etc/app.conf", frozenset({"O_RDONLY"}))
    doc = to_document(profile)
    doc["spec"]["containers"][0]["opens"][0]["path"] = "/etc/./app.conf"
    stats = DetectorStats()
    detector = Detector(
        settings=DetectorSettings(),
        profiles=_One(CompiledProfile(from_document(doc, source="t"))),
        pod_metadata=PodMeta(),
        stats=stats,
        rules=ruleset(binding),
    )
    events = [
        OpenEvent(
            timestamp_ns=T0 + i, container=WEB, process=proc("app"), path=p, flags=("O_RDONLY",)
        )
        for i, p in enumerate(["/var/cache/app/x", "/etc/app.conf", "/etc/passwd"])
    ]
    alerts = detector.evaluate(events)
    assert [a.message for a in alerts] == ["Unexpected file access: /etc/passwd by app (pid 100)"]
    assert stats.suppressed[("R0002", "exception")] == 1


def test_a_relative_name_in_another_directory_is_not_answered_from_the_memo() -> None:
    """`shadow` opened in /app is clean; the same name opened in /etc is /etc/shadow."""
    binding = (
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\nmetadata: {{name: b}}\n"
        "spec:\n  rules:\n  - ruleID: R0010\n"
    )
    detector = Detector(
        settings=DetectorSettings(),
        profiles=_One(_profile()),
        pod_metadata=PodMeta(),
        stats=DetectorStats(),
        rules=ruleset(binding),
    )
    events = [
        OpenEvent(
            timestamp_ns=T0 + i,
            container=WEB,
            process=proc("app", cwd=cwd),
            path="shadow",
            flags=("O_RDONLY",),
        )
        for i, cwd in enumerate(["/app", "/etc"])
    ]
    assert [a.message for a in detector.evaluate(events)] == [
        "Unexpected sensitive file access: /etc/shadow by app (pid 100)"
    ]
