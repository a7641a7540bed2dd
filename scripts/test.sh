#!/usr/bin/env bash
# The whole test suite, set-up included: lint, types, layering contracts, the container image
# (built from Containerfile and run by tests/image), pytest, then the minimum-versions job
# (scripts/test-floors.sh: the declared dependency floors in a virtualenv of their own).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" >&2
ruff check .
ruff format --check .
echo "== mypy (strict)" >&2
mypy gadgetclient profiler detector exporters gadgetwatch tests benchmarks
echo "== import-linter" >&2
lint-imports
echo "== lock files" >&2
python scripts/check_lock.py
echo "== image (scripts/build-image.sh; the first run on a machine builds the Debian bases)" >&2
scripts/build-image.sh localhost/gadgetwatch:test
echo "== pytest" >&2
pytest -q -p no:cacheprovider "$@"
echo "== minimum versions (scripts/test-floors.sh)" >&2
scripts/test-floors.sh
