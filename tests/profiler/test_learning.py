"""Replay-like event sequences through the learner; exact stored profile contents."""

from __future__ import annotations

from gadgetclient.events import PeerIdentity
from profiler.cache import ProfileCache
from profiler.dirstore import DirectoryStore
from profiler.documents import to_document
from profiler.identity import WorkloadKey
from profiler.readmodel import ProfileStatus
from tests.profiler.helpers import (
    T0,
    FakePods,
    S,
    accept,
    cap,
    connect,
    container,
    dns,
    exec_,
    learner,
    open_,
    syscalls,
)

KEY = WorkloadKey("shop", "Deployment", "web", "nginx")
PODS = FakePods(owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")}, mounts=["/data"])


async def test_sequence_is_stored_exactly(store: DirectoryStore) -> None:
    c = container()
    db = PeerIdentity(kind="svc", name="db", namespace="shop", labels=(("app", "db"),))
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    lrn.observe(
        [
            exec_(c, T0 + 1, "/usr/sbin/nginx", "-g", "daemon off;"),
            exec_(c, T0 + 2, "/usr/sbin/nginx", "-g", "daemon off;"),  # duplicate
            open_(c, T0 + 3, "/etc/nginx/nginx.conf", "O_RDONLY"),
            open_(c, T0 + 4, "/etc/nginx/nginx.conf", "O_RDONLY", "O_CLOEXEC"),
            open_(c, T0 + 5, "/proc/1234/status", "O_RDONLY"),
            open_(c, T0 + 6, "/proc/99/status", "O_RDONLY"),
            connect(c, T0 + 7, "10.96.0.20", 5432, db),
            accept(c, T0 + 8, 8080, "10.1.2.3"),
            dns(c, T0 + 9, "db.shop.svc.cluster.local"),
            dns(c, T0 + 10, "db.shop.svc.cluster.local", "10.96.0.20"),
            cap(c, T0 + 11, "CAP_NET_BIND_SERVICE", "SYS_BIND"),
            syscalls(c, T0 + 12, "read", "write", "accept4"),
            syscalls(c, T0 + 13, "read"),
        ]
    )
    assert await lrn.flush() == 1
    stored = await store.get(KEY)
    assert stored is not None
    doc = to_document(stored)
    assert doc["metadata"]["name"] == "deployment-web-nginx"
    assert doc["spec"]["containers"] == [
        {
            "name": "nginx",
            "execs": [
                {"path": "/usr/sbin/nginx", "args": ["/usr/sbin/nginx", "-g", "daemon off;"]}
            ],
            "opens": [
                {"path": "/etc/nginx/nginx.conf", "flags": ["O_CLOEXEC", "O_RDONLY"]},
                {"path": "/proc/⋯/status", "flags": ["O_RDONLY"]},
            ],
            "syscalls": ["accept4", "read", "write"],
            "capabilities": [{"caps": ["CAP_NET_BIND_SERVICE"], "syscall": "SYS_BIND"}],
            "dns": [{"dnsName": "db.shop.svc.cluster.local", "addresses": ["10.96.0.20"]}],
            "networkActivity": {
                "incoming": [{"port": 8080, "protocol": "TCP", "dstEndpoint": "10.1.2.3"}],
                "outgoing": [
                    {
                        "port": 5432,
                        "protocol": "TCP",
                        "dstEndpoint": "10.96.0.20",
                        "peer": {
                            "kind": "svc",
                            "name": "db",
                            "namespace": "shop",
                            "labels": {"app": "db"},
                        },
                    }
                ],
            },
        }
    ]
    status = doc["status"]
    assert status["phase"] == "learning"
    assert status["partial"] is False
    assert status["learningStartNs"] == T0
    assert status["learningPeriodNs"] == 3600 * S
    assert status["imageDigests"] == ["sha256:aaa"]
    assert status["templateRevisions"] == ["5d4f"]
    assert status["uids"] == [101]
    assert status["volumeMounts"] == ["/data"]
    assert status["podLabels"] == {"app": "web"}
    assert status["entries"] == {
        "execs": 1,
        "opens": 2,
        "ingress": 1,
        "egress": 1,
        "dns": 1,
        "capabilities": 1,
        "syscalls": 3,
        "total": 10,
    }
    assert lrn.stats.merged["open"] == 4
    assert lrn.stats.writes[("directory", "ok")] == 1
    # Nothing new: nothing to write.
    lrn.observe([exec_(c, T0 + 20, "/usr/sbin/nginx", "-g", "daemon off;")])
    assert await lrn.flush() == 0


async def test_replicas_and_restarts_share_one_profile(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    a = container(cid="a", pod="web-5d4f-aaaaa")
    b = container(cid="b", pod="web-5d4f-bbbbb", started=T0 + 60 * S)
    restarted = container(cid="a2", pod="web-5d4f-aaaaa", started=T0 + 120 * S)
    lrn.observe(
        [
            exec_(a, T0 + 1, "/bin/a"),
            exec_(b, T0 + 61 * S, "/bin/b"),
            exec_(restarted, T0 + 121 * S, "/bin/c"),
        ]
    )
    await lrn.flush()
    assert lrn.keys() == [KEY]
    stored = await store.get(KEY)
    assert stored is not None
    assert sorted(stored.entries.execs) == ["/bin/a", "/bin/b", "/bin/c"]


async def test_failed_write_keeps_the_delta(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    c = container()
    lrn.observe([exec_(c, T0 + 1, "/bin/a")])
    # Make the store unwritable: its root is a file.
    store.root.parent.mkdir(parents=True, exist_ok=True)
    store.root.write_text("not a directory")
    assert await lrn.flush() == 0
    assert lrn.stats.writes[("directory", "failed")] == 1
    assert lrn.stats.errors[("directory", "store")] == 1
    assert lrn.stats.pending_deltas == 1
    store.root.unlink()
    lrn.observe([exec_(c, T0 + 2, "/bin/b")])
    assert await lrn.flush() == 1
    stored = await store.get(KEY)
    assert stored is not None
    assert sorted(stored.entries.execs) == ["/bin/a", "/bin/b"]
    assert lrn.stats.pending_deltas == 0


async def test_cache_serves_the_detector_after_flush(store: DirectoryStore) -> None:
    cache = ProfileCache()
    lrn = learner(store, cache=cache, pods=PODS, attached_at_ns=T0)
    c = container()
    lrn.observe([exec_(c, T0 + 1, "/bin/sh", "-c", "true"), open_(c, T0 + 2, "/tmp/x", "O_RDWR")])
    # The start of learning is a lifecycle decision: published at once, before any flush.
    early = cache.get(KEY)
    assert early is not None
    assert early.status is ProfileStatus.LEARNING
    await lrn.flush()
    view = cache.get(KEY)
    assert view is not None
    assert view.status is ProfileStatus.LEARNING
    assert view.allows_exec("/bin/sh", ["/bin/sh", "-c", "true"])
    assert not view.allows_exec("/bin/sh", ["/bin/sh", "-c", "rm -rf /"])
    assert view.allows_open("/tmp/x", ["O_RDWR"])


async def test_host_mode_identity(store: DirectoryStore) -> None:
    lrn = learner(store, attached_at_ns=T0)
    c = container(namespace="", pod="", owner=("", ""), name="redis")
    lrn.observe([exec_(c, T0 + 1, "/usr/bin/redis-server")])
    await lrn.flush()
    assert lrn.keys() == [WorkloadKey("", "Host", "registry.example/web", "redis")]
    assert (store.root / "_host").is_dir()


async def test_bad_event_is_counted_and_the_batch_goes_on(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    c = container()
    bad = exec_(c, T0 + 1, "/bin/a")
    object.__setattr__(bad, "args", None)  # an impossible value from a broken decoder
    lrn.observe([bad, exec_(c, T0 + 2, "/bin/b")])
    assert lrn.stats.errors[("learning", "TypeError")] == 1
    profile = lrn.profile(KEY)
    assert profile is not None
    assert sorted(profile.entries.execs) == ["/bin/b"]
