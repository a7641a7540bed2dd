"""Custom resources: CRD loading and creation, structural-schema validation, status, patches."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.standins.fixtures import KubeApi

DATA = Path(__file__).parent / "data"
GROUP, VERSION, PLURAL = "example.com", "v1", "widgets"


@pytest.fixture
def widgets(kube_api_factory: Callable[..., KubeApi]) -> KubeApi:
    return kube_api_factory(crds_dir=DATA)


def _widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 3, **spec},
    }


def _causes(exc: client.ApiException) -> list[tuple[str, str]]:
    body = json.loads(str(exc.body))
    return [(c["reason"], c["field"]) for c in body["details"]["causes"]]


def test_custom_object_crud(widgets: KubeApi) -> None:
    api: Any = client.CustomObjectsApi(widgets.api_client())
    created = api.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, _widget("w1", color="red", port="http")
    )
    assert created["metadata"]["generation"] == 1
    created["spec"]["size"] = 4
    updated = api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1", created)
    assert updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    listed = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    assert listed["items"][0]["kind"] == "Widget"
    api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1")
    with pytest.raises(client.ApiException) as err:
        api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1")
    assert err.value.status == 404
    assert json.loads(str(err.value.body))["message"] == 'widgets.example.com "w1" not found'


def test_schema_violations_are_422_with_causes(widgets: KubeApi) -> None:
    api: Any = client.CustomObjectsApi(widgets.api_client())
    bad = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": "bad"},
        "spec": {
            "color": "purple",
            "port": 1.5,
            "tags": ["a", "a", "waytoolongtag"],
            "labels": {"x": 1},
            "since": "yesterday",
        },
    }
    with pytest.raises(client.ApiException) as err:
        api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, bad)
    assert err.value.status == 422
    body = json.loads(str(err.value.body))
    assert body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Widget"
    assert body["details"]["group"] == GROUP
    assert sorted(_causes(err.value)) == sorted(
        [
            ("FieldValueNotSupported", "spec.color"),
            ("FieldValueInvalid", "spec.port"),
            ("FieldValueDuplicate", "spec.tags[1]"),
            ("FieldValueTooLong", "spec.tags[2]"),
            ("FieldValueInvalid", "spec.labels.x"),
            ("FieldValueInvalid", "spec.since"),
            ("FieldValueRequired", "spec.size"),
        ]
    )
    assert body["message"].startswith('Widget.example.com "bad" is invalid: [')


def test_type_and_bounds(widgets: KubeApi) -> None:
    api: Any = client.CustomObjectsApi(widgets.api_client())
    cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"size": "3"}, ("FieldValueInvalid", "spec.size")),
        ({"size": 0}, ("FieldValueInvalid", "spec.size")),
        ({"size": 3, "tags": ["a", "b", "c", "d"]}, ("FieldValueTooMany", "spec.tags")),
        ({"size": 3, "note": None, "color": None}, ("FieldValueInvalid", "spec.color")),
    ]
    for spec, cause in cases:
        body = _widget("w")
        body["spec"] = spec
        with pytest.raises(client.ApiException) as err:
            api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
        assert _causes(err.value) == [cause], spec


def test_unknown_fields_strict_warn_and_preserved(widgets: KubeApi) -> None:
    api: Any = client.CustomObjectsApi(widgets.api_client())
    body = _widget("w", bogus=1, extra={"anything": {"goes": [1, 2]}})
    with pytest.raises(client.ApiException) as err:
        api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert err.value.status == 400
    assert 'unknown field "spec.bogus"' in json.loads(str(err.value.body))["message"]
    # The real server's default (Warn): pruned, with a Warning header.
    created = api.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, body, field_validation="Warn"
    )
    assert "bogus" not in created["spec"]
    assert created["spec"]["extra"] == {"anything": {"goes": [1, 2]}}


def test_update_without_resource_version_is_rejected(widgets: KubeApi) -> None:
    api: Any = client.CustomObjectsApi(widgets.api_client())
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _widget("w"))
    with pytest.raises(client.ApiException) as err:
        api.replace_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "w", _widget("w", size=5)
        )
    assert err.value.status == 422
    assert _causes(err.value) == [("FieldValueInvalid", "metadata.resourceVersion")]


def test_stale_update_and_injected_conflicts(widgets: KubeApi) -> None:
    api: Any = client.CustomObjectsApi(widgets.api_client())
    old = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _widget("w"))
    api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w", {"spec": {"size": 9}}
    )
    with pytest.raises(client.ApiException) as err:
        api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w", old)
    assert err.value.status == 409
    widgets.inject_conflicts("widgets.example.com", 1)
    with pytest.raises(client.ApiException) as err:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "w", {"spec": {"size": 10}}
        )
    assert err.value.status == 409
    # A merge patch carrying a resourceVersion is a precondition.
    stale = {"metadata": {"resourceVersion": old["metadata"]["resourceVersion"]}}
    with pytest.raises(client.ApiException) as err:
        api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w", stale)
    assert err.value.status == 409
    ok = api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w", {"spec": {"size": 11}}
    )
    assert ok["spec"]["size"] == 11


def test_status_subresource(widgets: KubeApi) -> None:
    api: Any = client.CustomObjectsApi(widgets.api_client())
    body = _widget("w")
    body["status"] = {"phase": "ignored"}
    created = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert "status" not in created
    created["status"] = {"phase": "Ready"}
    created = api.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "w", created
    )
    assert created["status"] == {"phase": "Ready"}
    assert created["metadata"]["generation"] == 1
    created["status"] = {"phase": "lost"}
    main = api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w", created)
    assert main["status"] == {"phase": "Ready"}


def test_json_patch_and_no_strategic_merge_on_custom(widgets: KubeApi) -> None:
    api: Any = client.CustomObjectsApi(widgets.api_client())
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _widget("w"))
    out = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w",
        [{"op": "add", "path": "/spec/tags", "value": ["x"]}],
        _content_type="application/json-patch+json",
    )
    assert out["spec"]["tags"] == ["x"]
    with pytest.raises(client.ApiException) as err:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "w",
            {"spec": {"size": 2}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 415


def test_crd_created_through_the_api_then_served_then_removed(kube_api: KubeApi) -> None:
    api = kube_api.api_client()
    ext: Any = client.ApiextensionsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    crd = yaml.safe_load((DATA / "widgets.example.com.yaml").read_text())
    ext.create_custom_resource_definition(crd)
    names = [c.metadata.name for c in ext.list_custom_resource_definition().items]
    assert "widgets.example.com" in names
    got = ext.read_custom_resource_definition("widgets.example.com")
    conditions = {c.type: c.status for c in got.status.conditions}
    assert conditions["Established"] == "True"
    resources = custom.get_api_resources(GROUP, VERSION)
    assert [r.name for r in resources.resources] == ["widgets", "widgets/status"]
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _widget("w"))
    ext.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(client.ApiException) as err:
        custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert err.value.status == 404


def test_discovery(kube_api: KubeApi) -> None:
    api = kube_api.api_client()
    groups: Any = client.ApisApi(api).get_api_versions()
    names = {g.name for g in groups.groups}
    assert {"apps", "batch", "apiextensions.k8s.io", "authorization.k8s.io"} <= names
    core: Any = client.CoreV1Api(api)
    pods = [r for r in core.get_api_resources().resources if r.name == "pods"]
    assert pods[0].namespaced is True
    assert pods[0].kind == "Pod"
    version: Any = client.VersionApi(api).get_code()
    assert version.major == "1"


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            lambda s: s["properties"]["spec"].pop("type"),
            "openAPIV3Schema.properties[spec].type: Required value",
        ),
        (
            lambda s: s["properties"]["spec"]["properties"].update(tags={"type": "array"}),
            "properties[spec].properties[tags].items: Required value",
        ),
        (
            lambda s: s["properties"]["spec"].update(additionalProperties={"type": "string"}),
            "additionalProperties and properties are mutual exclusive",
        ),
    ],
)
def test_crds_without_a_structural_schema_are_refused(
    kube_api: KubeApi, break_it: Callable[[dict[str, Any]], Any], message: str
) -> None:
    crd = yaml.safe_load((DATA / "widgets.example.com.yaml").read_text())
    break_it(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    ext: Any = client.ApiextensionsV1Api(kube_api.api_client())
    with pytest.raises(client.ApiException) as err:
        ext.create_custom_resource_definition(crd)
    assert err.value.status == 422
    assert message in json.loads(err.value.body or "{}")["message"]


def test_a_plural_served_by_two_groups_must_be_qualified(kube_api: KubeApi) -> None:
    crd = yaml.safe_load((DATA / "widgets.example.com.yaml").read_text())
    crd["metadata"]["name"] = "widgets.other.example.com"
    crd["spec"]["group"] = "other.example.com"
    kube_api.add(yaml.safe_load((DATA / "widgets.example.com.yaml").read_text()))
    kube_api.add(crd)
    with pytest.raises(KeyError, match="ambiguous"):
        kube_api.objects("widgets")
    assert kube_api.objects("widgets.other.example.com") == []
