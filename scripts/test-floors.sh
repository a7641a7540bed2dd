#!/usr/bin/env bash
# The minimum-versions job: every runtime dependency at the floor pyproject.toml declares
# (scripts/floors.py prints them as == pins), in a virtualenv of its own (.venv-floors), then
# the unit tests. A floor that fails here is wrong: raise it to the oldest version that passes.
# The test tools themselves are not pinned down (they are not the user's dependencies).
# Left out: the end-to-end and image tests (the same code paths, run with the locked versions)
# and the flood test (tracemalloc bounds of our own structures, minutes of CPU): they would
# double the job's time without testing a dependency more.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
venv=.venv-floors
[[ -x $venv/bin/python ]] || "$PY" -m venv "$venv"
floors=$venv/floors.txt
"$PY" scripts/floors.py >"$floors.new"
stamp=$venv/.installed
if [[ ! -f $stamp ]] || ! cmp -s "$floors.new" "$floors" || [[ pyproject.toml -nt $stamp ]]; then
    mv "$floors.new" "$floors"
    echo "floors: installing $(tr '\n' ' ' <"$floors")" >&2
    log=$venv/setup.log
    if ! { "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip \
           && "$venv/bin/python" -m pip install -q --disable-pip-version-check \
                  -c "$floors" -e ".[dev]"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "floors: pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
rm -f "$floors.new"
# The installed versions must be the floors exactly (a constraint pip could not honour fails
# the install; this catches a floor that is not a real release being silently rounded).
"$venv/bin/python" - "$floors" <<'PY'
import sys
from importlib.metadata import version
from packaging.version import Version
pins = [line.strip().partition("==")[::2] for line in open(sys.argv[1]) if line.strip()]
bad = [f"{n} {version(n)} != {f}" for n, f in pins if Version(version(n)) != Version(f)]
if bad:
    sys.exit("floors: not installed at the floor: " + "; ".join(bad))
PY
PATH="$PWD/$venv/bin:$PATH" "$venv/bin/pytest" -q -p no:cacheprovider \
    --ignore=tests/e2e --ignore=tests/image --ignore=tests/gadgetwatch/test_flood.py "$@"
