"""pytest fixtures for the stand-in Kubernetes API server.

Use from any test package by importing the fixture into that package's `conftest.py`:

    # tests/<area>/conftest.py
    from tests.standins.fixtures import kube_api  # noqa: F401  (re-exported fixture)

then in a test:

    def test_store(kube_api: KubeApi) -> None:
        api = kubernetes.client.CustomObjectsApi(kube_api.api_client())
        ...

`kube_api` is function-scoped: every test gets a fresh server (start-up costs a few
milliseconds) with the system namespaces, the `default/kubernetes` Service and Endpoints, and
every CRD in `deploy/crds/` loaded. `kube_api_factory` builds more (e.g. with a small
`history_size` to reach 410 Gone, or `crds_dir=None`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from tests.standins.kubeapi import KubeApiServer

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO_ROOT / "deploy" / "crds"


class KubeApi(KubeApiServer):
    """The running stand-in plus client helpers (all methods are safe to call from tests)."""

    def configuration(self) -> Any:
        config = k8s_client.Configuration(host=self.url)
        # Fail fast instead of urllib3's default retries, so "server down" tests are quick
        # and see the error the agent will see.
        config.retries = False
        return config

    def api_client(self) -> Any:
        """An official `kubernetes.client.ApiClient` pointed at the stand-in."""
        return k8s_client.ApiClient(self.configuration())


def make_kube_api(**kwargs: Any) -> KubeApi:
    kwargs.setdefault("crds_dir", CRDS_DIR if CRDS_DIR.is_dir() else None)
    server = KubeApi(**kwargs)
    server.start()
    return server


@pytest.fixture
def kube_api_factory() -> Iterator[Callable[..., KubeApi]]:
    """Start stand-ins with custom options; all are stopped at teardown."""
    started: list[KubeApi] = []

    def factory(**kwargs: Any) -> KubeApi:
        server = make_kube_api(**kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def kube_api() -> Iterator[KubeApi]:
    """A fresh stand-in API server with the repository's CRDs loaded."""
    server = make_kube_api()
    try:
        yield server
    finally:
        server.stop()
