"""Errors of the profiler package.

Tree (one class per *kind of failure*, with the object and field it concerns as attributes, never
one class per field)::

    ProfilerError              any failure; ``obj`` names the profile, ``field`` the path
    ├── InvalidProfileError    bad input: corrupt file or resource, unknown field, bad value
    ├── StoreError             the store could not be read or written (I/O, API server down)
    │   ├── ConflictError      optimistic concurrency: resourceVersion changed, or it exists
    │   ├── NotFoundError      the profile does not exist
    │   └── TooLargeError      the store refused the object for its size (HTTP 413)
    └── IncompleteProfileError a hardening artifact was asked of an unfinished profile

Third-party errors (``OSError``, ``yaml.YAMLError``, ``kubernetes`` ``ApiException``) are translated
at the module that calls the library (`dirstore`, `documents`, `k8s_store`) with
``raise Ours(...) from exc``; nothing above those modules sees a foreign exception type.
"""

from __future__ import annotations


class ProfilerError(Exception):
    """Base class. ``obj`` is the profile (``namespace/name`` or a file path), ``field`` the
    dotted location inside it (``spec.containers[0].opens[3].flags``); both may be empty."""

    def __init__(self, message: str, *, obj: str = "", field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.obj = obj
        self.field = field

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.obj, self.field) if part)
        return f"{where}: {self.message}" if where else self.message


class InvalidProfileError(ProfilerError):
    """The object is not a valid profile; the message says what is wrong and where."""


class StoreError(ProfilerError):
    """A store operation failed for a reason other than the ones below."""


class ConflictError(StoreError):
    """The object changed since it was read (resourceVersion mismatch) or already exists."""


class NotFoundError(StoreError):
    """The object does not exist."""


class TooLargeError(StoreError):
    """The store refused the object because of its size."""


class IncompleteProfileError(ProfilerError):
    """A hardening artifact needs a finished profile; pass ``force`` to derive one anyway."""
