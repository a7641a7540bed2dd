""" "Allow this": an alert's fix suggestion, with the reviewer's reason, as a real exception.

Every anomaly alert carries its `RuntimeAlertException` ready to apply (`fixSuggestion`, built
by `detector.alerting.exception_snippet`; signature rules put advice before it as YAML
comments). The console does not build exceptions itself: it parses that document, replaces
`spec.reason` with what the reviewer typed, checks the result with the detector's own parser
(the one the agents use), and then either creates it through the Kubernetes API (in the
alert's namespace, the group/version/plural of `detector.k8s_source.EXCEPTIONS`) or hands it
over as a file. The suggestion arrives from an agent, so it is treated as untrusted input:
anything that is not exactly one valid exception document is refused with the parser's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from detector import exceptions
from detector.errors import RuleSourceError
from detector.k8s_source import create_exception
from detector.loading import Level, from_object
from detector.rules import default_catalogue
from detector.ruleset import parse_documents

#: Longest reason kept (it is shown in reviews; a paragraph is plenty).
MAX_REASON = 1024


class AllowError(ValueError):
    """The suggestion cannot become an exception, or the API server refused it."""


@dataclass(frozen=True, slots=True)
class Allowance:
    document: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.document["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.document["metadata"].get("namespace") or "")

    def yaml(self) -> str:
        text: str = yaml.safe_dump(self.document, sort_keys=False, width=4096)
        return text


def suggestion_document(fix_suggestion: str) -> dict[str, Any] | None:
    """The exception in a fix suggestion, or None when it holds none (system alerts' prose)."""
    if not fix_suggestion or exceptions.KIND not in fix_suggestion:
        return None
    try:
        docs = [d for d in yaml.safe_load_all(fix_suggestion) if d is not None]
    except yaml.YAMLError:
        return None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return None
    doc = docs[0]
    if doc.get("kind") != exceptions.KIND or doc.get("apiVersion") != exceptions.API_VERSION:
        return None
    if not isinstance(doc.get("metadata"), dict) or not isinstance(doc.get("spec"), dict):
        return None
    return doc


def allowance(fix_suggestion: str, reason: str) -> Allowance:
    """The exception to write: the suggestion with `reason`, checked by the detector's parser."""
    doc = suggestion_document(fix_suggestion)
    if doc is None:
        raise AllowError("this alert's fix suggestion is not a RuntimeAlertException")
    reason = reason.strip()
    if not reason:
        raise AllowError("a reason is required: say why this behaviour is expected")
    if len(reason) > MAX_REASON:
        raise AllowError(f"the reason is longer than {MAX_REASON} characters")
    doc["spec"]["reason"] = reason
    parsed = parse_documents([from_object(doc, source="console")], catalogue=default_catalogue())
    errors = [p for p in parsed.problems if p.level is Level.ERROR]
    if errors or len(parsed.exceptions) != 1:
        detail = "; ".join(f"{p.field}: {p.message}" for p in errors) or "not an exception"
        raise AllowError(f"the suggested exception is invalid: {detail}")
    return Allowance(doc)


async def create_in_cluster(api_client: Any, allowed: Allowance) -> str:
    """Create the exception through the API; returns ``created`` or ``exists`` (same finding:
    the suggestion's name is derived from it, so it was allowed before)."""
    if not allowed.namespace:
        raise AllowError("a host workload's exception has no namespace: download it instead")
    try:
        created = await create_exception(api_client, allowed.document)
    except RuleSourceError as exc:
        raise AllowError(exc.message) from None
    return "created" if created else "exists"
