"""What every hardening artifact (seccomp, NetworkPolicy, securityContext advice) checks first.

An artifact derived from a profile that is still learning, partial or too large would forbid
behaviour the workload has but the profile never saw, and break it in production. So the
generators refuse such profiles with `IncompleteProfileError`; with ``force`` they go on and
return warnings that the CLI prints (and embeds as comments/annotations where it can).
"""

from __future__ import annotations

from profiler.errors import IncompleteProfileError
from profiler.profiles import Profile
from profiler.status import ProfileStatus


def require_completed(profile: Profile, *, artifact: str, force: bool) -> list[str]:
    """Raise unless the profile is completed (or `force`); return the warnings to show."""
    status = profile.meta.status
    if status is ProfileStatus.COMPLETED:
        return []
    problem = f"profile is {status.value}" + (
        f" ({profile.meta.reason})" if profile.meta.reason else ""
    )
    if not force:
        raise IncompleteProfileError(
            f"{problem}: a {artifact} from it could block what it has not seen yet "
            "(use --force to generate anyway)",
            obj=f"{profile.key.namespace or '-'}/{profile.name}",
            field="status.phase",
        )
    return [f"{problem}; this {artifact} may block legitimate behaviour"]
