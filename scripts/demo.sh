#!/usr/bin/env bash
# The main job on the embedded default: replay the bundled capture of a small web workload
# (a learning phase, then an intrusion) through the replay server over real gRPC, learn its
# profiles into ./demo-profiles, print alerts as JSON lines on stdout and a summary on stderr,
# then say where the profiles are and what to try next (also on stderr: stdout stays alerts).
# A replay serves no metrics, so the demo needs no free port.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# DEMO_PROFILES_DIR: where to learn the profiles (default ./demo-profiles).
profiles=${DEMO_PROFILES_DIR:-demo-profiles}
where=$profiles
[[ $where == /* ]] || where=$PWD/$where
code=0
.venv/bin/gadgetwatch --log-level warning run --replay examples/webshop-intrusion.capture.jsonl \
    --profiles-dir "$profiles" --learning-period 10m --summary "$@" || code=$?
if [[ $code == 0 ]]; then
    shown=$(printf %q "$profiles")
    cat >&2 <<NEXT

Profiles learned into $where. Try next:
  .venv/bin/gadgetwatch profile show shop/deployment-webshop-app --profiles-dir $shown
  .venv/bin/gadgetwatch profile seccomp shop/deployment-webshop-app --profiles-dir $shown
NEXT
fi
exit "$code"
