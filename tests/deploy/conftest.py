"""The stand-in API server validates our custom objects against our CRDs."""

from tests.standins.fixtures import kube_api, kube_api_factory

__all__ = ["kube_api", "kube_api_factory"]
