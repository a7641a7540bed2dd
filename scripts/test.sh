#!/usr/bin/env bash
# The whole test suite, set-up included: lint, types, layering contracts, then pytest.
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
echo "== pytest" >&2
pytest -q -p no:cacheprovider "$@"
