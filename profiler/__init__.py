"""Application profiles: learn what each workload container normally does, store it, use it.

Write side: `learning.Learner.observe(events)` merges typed events into per-workload-container
profiles (`profiles.Profile`), identity from `identity.workload_key`; `Learner.flush()` / `run()`
writes deltas through `store.write_merged` into a `store.ProfileStore` (`dirstore.DirectoryStore`
or `k8s_store.KubernetesStore`). Read side: `cache.ProfileCache`, the one owner of what each
workload's profile allows now on this node, answers the detector (`readmodel.ProfileReadModel`):
the learner publishes every lifecycle decision into it on event time (`Learner.observe_until`),
the store's `watch` adds what other nodes wrote.
Tools: `exporting` (staging -> production), `diffing`, and the hardening artifacts `seccomp`,
`netpol`, `advice`. See docs/profiles.md.

Contracts (MUST): merging is a set union (idempotent, commutative); a delta is cleared only
after its write succeeded; user-owned profiles are never written by learning; a profile is
never truncated (it becomes `too-large` with a reason); every skipped event, failed write and
unreadable object is counted in `stats.ProfilerStats` by reason.
"""
