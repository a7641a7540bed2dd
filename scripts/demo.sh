#!/usr/bin/env bash
# The main job on the embedded default: replay the bundled capture of a small web workload
# (a learning phase, then an intrusion) through the replay server over real gRPC, learn its
# profiles into ./demo-profiles, print alerts as JSON lines on stdout and a summary on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/gadgetwatch --log-level warning run --replay examples/webshop-intrusion.capture.jsonl \
    --profiles-dir demo-profiles --learning-period 10m --summary "$@"
