"""The stand-in API server fixtures, for `detector.k8s_source` tests."""

from tests.standins.fixtures import kube_api, kube_api_factory

__all__ = ["kube_api", "kube_api_factory"]
