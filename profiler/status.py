"""`ProfileStatus`: the lifecycle states of a profile.

Its own module because both sides need it and neither may own it: the profile model
(`profiles.py`, the write side) stores it, the read model (`readmodel.py`) and the detector
gate on it. Keeping it here lets `readmodel` → `cache` be a one-way import.
"""

from __future__ import annotations

import enum


class ProfileStatus(enum.StrEnum):
    LEARNING = "learning"
    COMPLETED = "completed"
    #: Learning finished, but the agent attached to an already running container, so the
    #: container's start-up behaviour was not seen.
    PARTIAL = "partial"
    #: A size cap was reached; the profile stopped growing (never truncated silently).
    TOO_LARGE = "too-large"
