"""The stand-in's own tests use its fixtures like every other test package does."""

from tests.standins.fixtures import kube_api, kube_api_factory

__all__ = ["kube_api", "kube_api_factory"]
