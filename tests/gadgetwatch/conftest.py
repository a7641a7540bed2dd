from tests.standins.fixtures import kube_api, kube_api_factory  # noqa: F401  (fixtures)
