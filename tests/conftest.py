"""Hygiene for every test: a clean environment and no stray configuration from the host."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell (`GADGETWATCH_*`)."""
    for name in list(os.environ):
        if name.startswith("GADGETWATCH_") or name in ("KUBECONFIG", "NODE_NAME"):
            monkeypatch.delenv(name, raising=False)
