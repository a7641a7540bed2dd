"""Fixtures of the console tests: the stand-in API server (re-exported)."""

from __future__ import annotations

from tests.standins.fixtures import kube_api, kube_api_factory

__all__ = ["kube_api", "kube_api_factory"]
