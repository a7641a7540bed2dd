#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml: run after changing a dependency, commit the
# result with the change. requirements.lock (runtime: what the image installs) and
# requirements-dev.lock (runtime + the dev extra: what CI installs) and requirements-build.lock
# (the build backend the image build uses to build gadgetwatch itself) pin every package, direct
# and transitive, with the sha256 of every published file of that version, so pip installs them
# with --require-hashes and a fresh machine gets exactly what was tested. The dev lock is
# resolved under the runtime lock as constraints, so the two never disagree on a version.
#
# Needs uv (installed into .venv here if missing; only this script uses it). Linux, CPython
# 3.11 (the oldest Python we support, and the image's): markers for other platforms would only
# add packages nothing installs.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || scripts/setup.sh
[[ -x .venv/bin/uv ]] || .venv/bin/python -m pip install -q --disable-pip-version-check uv
compile=(.venv/bin/uv pip compile --quiet --generate-hashes --no-header --python-version 3.11
         --python-platform linux --index-url https://pypi.org/simple)
"${compile[@]}" pyproject.toml -o requirements.lock
"${compile[@]}" pyproject.toml --extra dev -c requirements.lock -o requirements-dev.lock
# The build backend (pyproject.toml [build-system] requires), for the image's offline build.
build_in=$(mktemp)
trap 'rm -f "$build_in"' EXIT
.venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' >"$build_in"
"${compile[@]}" --no-annotate "$build_in" -o requirements-build.lock
echo "lock: wrote requirements.lock ($(grep -c '^[a-z]' requirements.lock) packages)" \
     "and requirements-dev.lock ($(grep -c '^[a-z]' requirements-dev.lock) packages)" >&2
