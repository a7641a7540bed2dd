"""`gadgetwatch profile …` on real files in a directory store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import yaml

from gadgetclient.events import PeerIdentity
from gadgetwatch.cli import main
from profiler.dirstore import DirectoryStore
from profiler.documents import API_VERSION as PROFILE_API
from profiler.identity import WorkloadKey
from profiler.profiles import NO_PEER, ManagedBy, Profile, ProfileMeta
from profiler.readmodel import ProfileStatus

KEY = WorkloadKey("staging", "Deployment", "web", "nginx")


def completed() -> Profile:
    p = Profile(
        key=KEY,
        meta=ProfileMeta(
            status=ProfileStatus.COMPLETED,
            reason="learning period 1h elapsed",
            uids={101},
            labels={"app": "web"},
            image_digests={"sha256:aaa"},
        ),
    )
    p.entries.add_exec("/usr/sbin/nginx", ("/usr/sbin/nginx",))
    p.entries.add_open("/etc/nginx/nginx.conf", ("O_RDONLY",))
    p.entries.add_open("/var/cache/nginx/x", ("O_WRONLY", "O_CREAT"))
    p.entries.syscalls.update({"read", "accept4"})
    p.entries.capabilities.add(("CAP_NET_BIND_SERVICE", "SYS_BIND"))
    p.entries.add_dns("db.staging.svc.cluster.local", ("10.96.0.20",))
    db = PeerIdentity(kind="pod", name="db-0", namespace="staging", labels=(("app", "db"),))
    p.entries.egress.add(("10.1.0.7", 5432, "TCP", db))
    p.entries.ingress.add((8080, "TCP", "*", NO_PEER))
    return p


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main()` configures structlog onto the captured stderr; undo it for later tests."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def pdir(tmp_path: Path) -> Path:
    root = tmp_path / "profiles"
    DirectoryStore(root).create_sync(completed())
    return root


def test_list_and_show(pdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "profile", "--profiles-dir", str(pdir), "list")
    assert code == 0
    assert out.splitlines()[1].split() == [
        "staging", "deployment-web-nginx", "Deployment", "web", "nginx", "completed", "9",
    ]  # fmt: skip
    code, out, _ = run(
        capsys, "profile", "--profiles-dir", str(pdir), "show", "staging/deployment-web-nginx"
    )
    assert code == 0
    assert "Workload:   staging/Deployment/web/nginx" in out
    assert "  exec /usr/sbin/nginx: /usr/sbin/nginx" in out
    code, out, _ = run(
        capsys, "profile", "--profiles-dir", str(pdir), "show", "staging/deployment-web-nginx",
        "-o", "json",
    )  # fmt: skip
    assert json.loads(out)["status"]["phase"] == "completed"


def test_export_import_with_namespace_remap(
    pdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "web.yaml"
    code, _, err = run(
        capsys, "profile", "--profiles-dir", str(pdir), "export", "-f", str(exported)
    )
    assert code == 0, err
    doc = yaml.safe_load(exported.read_text())
    assert "resourceVersion" not in doc["metadata"]
    prod = tmp_path / "prod"
    code, out, err = run(
        capsys, "profile", "--profiles-dir", str(prod), "import", str(exported), "-n", "production"
    )
    assert code == 0, err
    assert out == "imported production/deployment-web-nginx (completed, user-owned)\n"
    stored = DirectoryStore(prod)._get(WorkloadKey("production", "Deployment", "web", "nginx"))
    assert stored is not None
    assert stored.meta.managed_by is ManagedBy.USER
    assert stored.meta.status is ProfileStatus.COMPLETED
    # Every reference to the source namespace now points at the target one.
    want = completed().entries
    db = PeerIdentity(kind="pod", name="db-0", namespace="production", labels=(("app", "db"),))
    want.egress = {("10.1.0.7", 5432, "TCP", db)}
    want.dns = {"db.production.svc.cluster.local": frozenset({"10.96.0.20"})}
    assert stored.entries == want
    # Importing again replaces it (an explicit decision), keeping one object.
    code, _, _ = run(
        capsys, "profile", "--profiles-dir", str(prod), "import", str(exported), "-n", "production"
    )
    assert code == 0
    assert len(DirectoryStore(prod).files()) == 1


def test_imported_profile_netpol_allows_the_new_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`profile import -n shop-prod` of a staging profile, then `profile netpol`: the in-namespace
    peers (pod and service) are allowed in shop-prod, never in the old namespace; peers of
    other namespaces (cluster DNS, a shared database) are left as they were."""
    staging = completed()
    svc = PeerIdentity(kind="svc", name="cache", namespace="staging")
    shared = PeerIdentity(kind="pod", name="pg-0", namespace="data", labels=(("app", "pg"),))
    staging.entries.egress.update(
        {("10.96.0.30", 6379, "TCP", svc), ("10.1.9.9", 5433, "TCP", shared)}
    )
    staging.entries.add_dns("cache.staging.svc", ("10.96.0.30",))
    staging.entries.add_dns("kube-dns.kube-system.svc.cluster.local", ("10.96.0.10",))
    source = tmp_path / "staging"
    DirectoryStore(source).create_sync(staging)
    exported = tmp_path / "web.yaml"
    base = ("profile", "--profiles-dir")
    code, _, err = run(capsys, *base, str(source), "export", "-f", str(exported))
    assert code == 0, err
    prod = tmp_path / "prod"
    code, _, err = run(capsys, *base, str(prod), "import", str(exported), "-n", "shop-prod")
    assert code == 0, err
    code, out, err = run(capsys, *base, str(prod), "netpol", "shop-prod/deployment-web-nginx")
    assert code == 0, err
    policy = yaml.safe_load(out)
    assert policy["metadata"]["namespace"] == "shop-prod"
    assert "staging" not in out

    def peers(port: int) -> list[dict[str, object]]:
        (rule,) = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == port]
        return list(rule["to"])

    def in_namespace(ns: str) -> dict[str, object]:
        return {"matchLabels": {"kubernetes.io/metadata.name": ns}}

    assert peers(5432) == [
        {
            "namespaceSelector": in_namespace("shop-prod"),
            "podSelector": {"matchLabels": {"app": "db"}},
        }
    ]
    assert peers(6379) == [{"namespaceSelector": in_namespace("shop-prod")}]
    assert peers(5433) == [
        {"namespaceSelector": in_namespace("data"), "podSelector": {"matchLabels": {"app": "pg"}}}
    ]
    imported = DirectoryStore(prod)._get(WorkloadKey("shop-prod", "Deployment", "web", "nginx"))
    assert imported is not None
    assert set(imported.entries.dns) == {
        "db.shop-prod.svc.cluster.local",
        "cache.shop-prod.svc",
        "kube-dns.kube-system.svc.cluster.local",
    }


def test_diff_two_revisions(pdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.yaml"
    run(capsys, "profile", "--profiles-dir", str(pdir), "export", "-f", str(old))
    store = DirectoryStore(pdir)
    current = store._get(KEY)
    assert current is not None
    current.entries.add_exec("/bin/sh", ("/bin/sh", "-c", "id"))
    current.entries.syscalls.discard("accept4")
    store.update_sync(current)
    code, out, _ = run(
        capsys,
        "profile",
        "--profiles-dir",
        str(pdir),
        "diff",
        str(old),
        "staging/deployment-web-nginx",
    )
    assert code == 1
    assert out.splitlines() == ["- syscall accept4", "+ exec /bin/sh: /bin/sh -c id"]


def test_hardening_commands(pdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("profile", "--profiles-dir", str(pdir))
    ref = "staging/deployment-web-nginx"
    code, out, _ = run(capsys, *base, "seccomp", ref)
    assert code == 0
    body = json.loads(out)
    assert body["defaultAction"] == "SCMP_ACT_ERRNO"
    names = body["syscalls"][0]["names"]
    assert {"accept4", "read", "exit_group", "execve"} <= set(names)
    code, out, _ = run(capsys, *base, "seccomp", ref, "--complain", "--spo")
    spo = yaml.safe_load(out)
    assert spo["kind"] == "SeccompProfile"
    assert spo["spec"]["defaultAction"] == "SCMP_ACT_LOG"
    code, out, _ = run(capsys, *base, "netpol", ref)
    assert code == 0
    policy = yaml.safe_load(out)
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "web"}}
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    assert policy["spec"]["egress"][0]["ports"] == [
        {"protocol": "UDP", "port": 53},
        {"protocol": "TCP", "port": 53},
    ]
    assert policy["spec"]["egress"][1] == {
        "ports": [{"protocol": "TCP", "port": 5432}],
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "staging"}},
                "podSelector": {"matchLabels": {"app": "db"}},
            }
        ],
    }
    code, out, _ = run(capsys, *base, "advise", ref, "-o", "yaml")
    ctx = yaml.safe_load(out)["securityContext"]
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is False  # /var/cache/nginx/x was written
    assert ctx["allowPrivilegeEscalation"] is False
    code, out, _ = run(capsys, *base, "advise", ref)
    assert "    # writes outside volumes and temporary paths: /var/cache/nginx/x" in out


def test_incomplete_profile_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    learning = completed()
    learning.meta.status = ProfileStatus.LEARNING
    learning.meta.reason = "learning from container start"
    DirectoryStore(tmp_path).create_sync(learning)
    base = ("profile", "--profiles-dir", str(tmp_path))
    code, out, err = run(capsys, *base, "seccomp", "staging/deployment-web-nginx")
    assert code == 1
    assert out == ""
    assert err.startswith("gadgetwatch profile: staging/deployment-web-nginx: status.phase: ")
    assert len(err.splitlines()) == 1
    code, out, err = run(capsys, *base, "netpol", "staging/deployment-web-nginx", "--force")
    assert code == 0
    assert err.startswith("warning: profile is learning")
    assert yaml.safe_load(out)["kind"] == "NetworkPolicy"


def test_clear_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("profile", "--profiles-dir", str(tmp_path))
    code, _, err = run(capsys, *base, "show", "staging/missing")
    assert (code, err) == (1, "gadgetwatch profile: staging/missing: no such profile\n")
    corrupt = tmp_path / "bad.yaml"
    corrupt.write_text(f"apiVersion: {PROFILE_API}\nkind: ApplicationProfile\nspec: [1, 2\n")
    code, _, err = run(capsys, *base, "import", str(corrupt))
    assert code == 1
    assert err.startswith(f"gadgetwatch profile: {corrupt}: line ")
    code, _, err = run(capsys, *base, "show", "nonsense")
    assert code == 2


def test_import_keeps_kubescape_rule_policies(
    pdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A profile carrying Kubescape's per-rule policies imports (it was "unknown field")."""
    exported = tmp_path / "web.yaml"
    code, _, err = run(
        capsys, "profile", "--profiles-dir", str(pdir), "export", "-f", str(exported)
    )
    assert code == 0, err
    doc = yaml.safe_load(exported.read_text())
    doc["spec"]["containers"][0]["policyByRuleId"] = {
        "R1011": {"processAllowed": ["installer"], "containerAllowed": False}
    }
    exported.write_text(yaml.safe_dump(doc))
    prod = tmp_path / "prod"
    code, _, err = run(capsys, "profile", "--profiles-dir", str(prod), "import", str(exported))
    assert code == 0, err
    stored = DirectoryStore(prod)._get(completed().key)
    assert stored is not None
    assert stored.entries.rule_policies == {"R1011": frozenset({"installer"})}
