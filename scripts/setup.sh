#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtualenv in .venv with gadgetwatch (editable) and
# the locked dependencies (requirements.lock; scripts/lock.sh regenerates it) and, with --dev,
# the locked test tools and the Debian packages the tests run for real (rsyslog,
# prometheus-alertmanager, kubectl; mmdebstrap, podman, buildah and runc for the image build;
# chromium and chromium-driver for the console's browser tests).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
suffix=""
if [[ "${1:-}" == "--dev" ]]; then
    dev=1
    suffix=-dev
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.gadgetwatch-installed$suffix
# The locked set first (exact versions, hashes checked, nothing resolved), then the project
# itself without dependencies: what gets installed is exactly what the lock file says.
lock=requirements.lock
[[ $dev == 1 ]] && lock=requirements-dev.lock
# A --dev install includes the plain one.
if [[ $dev == 0 && -f ${stamp}-dev && ! pyproject.toml -nt ${stamp}-dev \
      && ! requirements-dev.lock -nt ${stamp}-dev ]]; then
    stamp=${stamp}-dev
    lock=requirements-dev.lock
fi
if [[ ! -f $stamp || pyproject.toml -nt $stamp || $lock -nt $stamp ]]; then
    # pip's and setuptools' chatter goes to a log, shown only when the install fails.
    log=.venv/setup.log
    pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
    echo "setup: installing $lock and gadgetwatch into .venv" >&2
    if ! { "${pip[@]}" --upgrade pip \
           && "${pip[@]}" --require-hashes --no-deps -r "$lock" \
           && "${pip[@]}" --no-deps -e . \
           && .venv/bin/python -m pip check; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "setup: pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi

if [[ $dev == 1 ]]; then
    missing=()
    command -v rsyslogd >/dev/null 2>&1 || [[ -x /usr/sbin/rsyslogd ]] || missing+=(rsyslog)
    # gtls driver for the syslog-over-TLS (RFC 5425) tests against a real rsyslog.
    [[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ]] || dpkg -s rsyslog-gnutls >/dev/null 2>&1 \
        || missing+=(rsyslog-gnutls)
    [[ -x /usr/bin/prometheus-alertmanager ]] || missing+=(prometheus-alertmanager)
    # kubectl 1.20 (Debian kubernetes-client) renders the kustomize base in tests/deploy.
    command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
    # The shells whose completion scripts (`gadgetwatch completion zsh|fish`) the tests run.
    command -v zsh >/dev/null 2>&1 || missing+=(zsh)
    command -v fish >/dev/null 2>&1 || missing+=(fish)
    # grpc-go (IG's own gRPC implementation) for the native transport's conformance fixture,
    # built offline in GOPATH mode against Debian's Go packages (tests/igfixture).
    dpkg -s golang-google-grpc-dev >/dev/null 2>&1 || missing+=(golang-google-grpc-dev)
    # The container image test (scripts/build-image.sh): a Debian base root filesystem from
    # packages, imported and built on with podman; runc because crun refuses hosts with a
    # hybrid cgroup v1/v2 layout (deploy/image/README.md).
    # The chart renderer of tests/deploy (tests/deploy/helmrender: Go's text/template + sprig,
    # what Helm is built on; no helm binary is reachable).
    # The console's browser tests (tests/console): Debian's chromium and its WebDriver.
    for pkg in mmdebstrap podman buildah runc golang-go golang-github-masterminds-sprig-dev \
               golang-gopkg-yaml.v2-dev golang-gopkg-yaml.v3-dev chromium chromium-driver; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if (( ${#missing[@]} )); then
        SUDO=""
        [[ $(id -u) == 0 ]] || SUDO=sudo
        echo "setup: installing Debian packages: ${missing[*]}" >&2
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        # policy-rc.d keeps the packages' own services from starting: the tests start their
        # own instances on loopback with private configuration.
        $SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
        $SUDO rm -f /usr/sbin/policy-rc.d
    fi
fi
