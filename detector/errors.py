"""Errors of the detector package.

::

    DetectorError                 root; carries where the problem is (`source`, `field`)
    └── RuleSourceError           a binding, exception or rule file/CR cannot be used
        (one class for every such problem: `source` names the file and line or the CR,
        `field` the dotted path inside the document, e.g. ``spec.rules[3].severity``)
    └── MiningDataError           the packaged mining-domain list is broken (`detector.mining`)

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
