"""Application profiles: learn what each workload container normally does, store it, use it.

Write side: `learning.Learner.observe(events)` merges typed events into per-workload-container
profiles (`profiles.Profile`), identity from `identity.workload_key`; `Learner.flush()` / `run()`
writes deltas through `store.write_merged` into a `store.ProfileStore` (`dirstore.DirectoryStore`
or `k8s_store.KubernetesStore`). Read side: `cache.ProfileCache`, fed by the store's `watch`
and by the learner's writes, answers the detector (`readmodel.ProfileReadModel`).
Tools: `exporting` (staging -> production), `diffing`, and the hardening artifacts `seccomp`,
`netpol`, `advice`. See docs/profiles.md.

Contracts (MUST): merging is a set union (idempotent, commutative); a delta is cleared only
after its write succeeded; user-owned profiles are never written by learning; a profile is
never truncated (it becomes `too-large` with a reason); every skipped event, failed write and
unreadable object is counted in `stats.ProfilerStats` by reason.
"""
