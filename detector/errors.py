"""Errors of the detector package.

::

    DetectorError                 root; carries where the problem is (`source`, `field`)
    └── RuleSourceError           a binding, exception or rule file/CR cannot be used
        (one class for every such problem: `source` names the file and line or the CR,
        `field` the dotted path inside the document, e.g. ``spec.rules[3].severity``)
    └── MiningDataError           the packaged mining-domain list is broken (`detector.mining`)
    CelCompileError (ValueError)  a RuntimeRule expression does not compile (`custom_rules`)
    RuleEvaluationError           a CEL rule's result breaks the rule contract (per event:
                                  counted by the detector, never propagated)

Per-event problems on the hot path are never raised: they are counted in `DetectorStats`
and logged rate-limited. These errors exist for load time (files, cluster objects) and for
the command line, where they become one precise line for a person.
"""

from __future__ import annotations


class DetectorError(Exception):
    """Root of the detector's errors."""

    def __init__(self, message: str, *, source: str = "", field: str = "") -> None:
        self.message = message
        self.source = source
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        return f"{where}: {self.message}" if where else self.message


class RuleSourceError(DetectorError):
    """A bindings/exceptions source (file, directory, cluster) cannot be read at all.

    Problems *inside* a readable source are not raised but collected as `Problem`s
    (`detector.loading`), so one bad document never disables the others.
    """


class CelCompileError(ValueError):
    """A CEL expression problem, with the 1-based line and column inside the expression if
    known; reported as a `Problem` of the rule's document, never raised to the caller."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f"expression line {line}, column {column}: " if line is not None else ""
        super().__init__(where + message)


class RuleEvaluationError(RuntimeError):
    """A CEL rule's expression evaluated to something the rule contract does not allow (a
    match that is not a bool, a message that is not a string, a key that is not scalars)."""
