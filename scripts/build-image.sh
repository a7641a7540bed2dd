#!/usr/bin/env bash
# Build the agent image from Containerfile without pulling anything from a registry, then write
# its SBOM and print its size and the build time.
#
#   scripts/build-image.sh [TAG]        (default TAG: localhost/gadgetwatch:dev)
#
# 1. Base images from Debian packages: mmdebstrap makes a minimal bookworm root filesystem with
#    python3 (the runtime base) and the same plus python3-venv (the build base), imported into
#    podman as localhost/gadgetwatch-base:<key> and localhost/gadgetwatch-build-base:<key>.
#    <key> hashes everything that decides their content (suite, package lists, this script's
#    base recipe), so they are made once per machine and reused (cache: $GADGETWATCH_IMAGE_CACHE,
#    default ~/.cache/gadgetwatch-image).
# 2. A wheelhouse of requirements.lock and requirements-build.lock (pip download, hashes
#    checked), so the image build itself needs no network.
# 3. podman build of Containerfile with those bases as BASE_IMAGE/BUILD_BASE_IMAGE.
# 4. The SBOM (CycloneDX JSON) of the built image's file tree: Debian packages from its dpkg
#    database, Python distributions from its site-packages (build/image/sbom.cdx.json).
#
# Prints "image: <tag> size=<bytes> build_seconds=<s>" on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
# python3: the interpreter; libstdc++6: grpcio's extension module links against it. Nothing
# else at run time (certifi's CA bundle replaces ca-certificates). python3-venv only in the
# build base.
runtime_pkgs="python3 libstdc++6"
if [[ "${1:-}" == "--prune-base" ]]; then
    # mmdebstrap customize hook (see below): $2 is the root filesystem being built.
    root=$2
    mapfile -t unneeded < <(chroot "$root" python3 - $runtime_pkgs <scripts/base_prune.py)
    # Their removal scripts would need the very tools being removed (rm, sed, perl): the
    # packages go without them; what they would tidy (alternatives, shells) goes with /usr.
    # Likewise debianutils' /etc/shells trigger, which the removal of bash would run.
    rm -f "$root/var/lib/dpkg/info/debianutils.postinst"
    for pkg in "${unneeded[@]}"; do
        rm -f "$root/var/lib/dpkg/info/$pkg".{prerm,postrm} "$root/var/lib/dpkg/info/$pkg":*.{prerm,postrm}
    done
    chroot "$root" dpkg --purge --force-remove-essential --force-depends "${unneeded[@]}" >/dev/null 2>&1
    # iconv's converters: Python's codecs are its own, nothing in the image calls iconv.
    rm -rf "$root"/usr/lib/x86_64-linux-gnu/gconv "$root"/var/cache/* "$root"/var/log/*
    # Standard-library parts nothing in the image imports: the extension modules whose libraries
    # base_prune.py left out (OPTIONAL), the test suite, 2to3, distutils, help()'s topics.
    stdlib=$root/usr/lib/python3.11
    rm -rf "$stdlib"/{test,lib2to3,distutils,pydoc_data,dbm,curses,idlelib,tkinter,turtledemo,ensurepip}
    rm -f "$stdlib"/lib-dynload/{_dbm,_gdbm,_curses,_curses_panel,readline,nis}.cpython-311-*.so
    exit 0
fi
tag=${1:-localhost/gadgetwatch:dev}
start=$(date +%s)
out=build/image
mkdir -p "$out"
cache=${GADGETWATCH_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gadgetwatch-image}
mkdir -p "$cache"

# ---- 1. base images ------------------------------------------------------------------------
suite=bookworm
# binutils: `strip` for the shared objects of the wheels (Containerfile).
build_pkgs="python3-venv binutils"
# Not needed in an image and large: documentation, manual pages, translations.
dpkg_opts=(
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
)
# mmdebstrap's merged-usr hooks lay out merged /usr themselves; without them the essential set
# pulls in usrmerge and with it perl (~50 MB) only to convert the layout.
hooks=/usr/share/mmdebstrap/hooks/merged-usr
recipe="v4 $(sha256sum scripts/base_prune.py | cut -c1-16) $suite essential $runtime_pkgs | $build_pkgs | ${dpkg_opts[*]} | merged-usr hooks"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
base_tar=$cache/base-$key.tar
build_tar=$cache/build-base-$key.tar
if [[ ! -f $base_tar || ! -f $build_tar ]]; then
    echo "build-image: making Debian $suite base root filesystems (key $key)" >&2
    tmp_build=$(mktemp "$cache/build-base.XXXXXX")
    # Customize hooks, in order: save the build base (with python3-venv); purge python3-venv
    # and everything outside python3's dependency closure (scripts/base_prune.py) for the
    # runtime base, which mmdebstrap then writes.
    log=$cache/mmdebstrap.log
    if ! mmdebstrap --quiet --format=tar --variant=essential --include="${runtime_pkgs// /,},${build_pkgs// /,}" \
        --hook-dir="$hooks" "${dpkg_opts[@]}" \
        --customize-hook="tar -C \"\$1\" --one-file-system --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -cf \"$tmp_build\" ." \
        --customize-hook="chroot \"\$1\" dpkg --purge python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl >/dev/null" \
        --customize-hook="\"$PWD/scripts/build-image.sh\" --prune-base \"\$1\"" \
        "$suite" "$base_tar.part" >"$log" 2>&1; then
        cat "$log" >&2
        echo "build-image: mmdebstrap failed (log above, also in $log)" >&2
        exit 1
    fi
    mv "$tmp_build" "$build_tar"
    mv "$base_tar.part" "$base_tar"
    # Bases of older recipes are never used again: free their space (files and images).
    for stale in "$cache"/base-*.tar "$cache"/build-base-*.tar; do
        [[ $stale == "$base_tar" || $stale == "$build_tar" ]] || rm -f "$stale"
    done
    for image in $(podman images --format '{{.Repository}}:{{.Tag}}' \
                   | grep -E '^localhost/gadgetwatch-(build-)?base:' | grep -v ":$key\$" || true); do
        podman rmi "$image" >/dev/null 2>&1 || true
    done
fi
base_image=localhost/gadgetwatch-base:$key
build_image=localhost/gadgetwatch-build-base:$key
podman image exists "$base_image" || podman import --quiet "$base_tar" "$base_image" >/dev/null
podman image exists "$build_image" || podman import --quiet "$build_tar" "$build_image" >/dev/null

# ---- 2. build context with a wheelhouse -----------------------------------------------------
context=$out/context
rm -rf "$context"
mkdir -p "$context"
# The tracked files plus the working tree's changes; .containerignore picks what is copied in.
git ls-files -z --cached --others --exclude-standard | tar -cf - --null -T - | tar -xf - -C "$context"
wheels=$cache/wheels
mkdir -p "$wheels"
py=.venv/bin/python
[[ -x $py ]] || py=python3
"$py" -m pip download -q --disable-pip-version-check --no-deps --require-hashes \
    --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --implementation cp \
    -r requirements.lock -r requirements-build.lock -d "$wheels" 2>"$out/pip-download.log" \
    || { cat "$out/pip-download.log" >&2; exit 1; }
mkdir -p "$context/wheels"
cp "$wheels"/*.whl "$context/wheels/"

# ---- 3. the image ---------------------------------------------------------------------------
version=$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
revision=$(git rev-parse HEAD)
# --isolation chroot: RUN steps need no OCI runtime (crun refuses hosts with a hybrid cgroup
# layout; deploy/image/README.md). It shares the host's network, but --no-index keeps pip
# to the wheelhouse. The revision is also given as --label: buildah's layer cache reuses a
# LABEL step whose ARG changed, which left a cached build with the previous commit's revision.
podman build --quiet --isolation chroot \
    --build-arg BASE_IMAGE="$base_image" --build-arg BUILD_BASE_IMAGE="$build_image" \
    --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links=/src/wheels" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --label org.opencontainers.image.revision="$revision" \
    -f Containerfile -t "$tag" "$context" >"$out/image-id"

# ---- 4. SBOM and figures --------------------------------------------------------------------
container=$(podman create "$tag")
trap 'podman rm -f "$container" >/dev/null 2>&1 || true' EXIT
podman export "$container" >"$out/rootfs.tar"
"$py" scripts/sbom.py "$out/rootfs.tar" --name gadgetwatch --version "$version" \
    -o "$out/sbom.cdx.json"
rm -f "$out/rootfs.tar"
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image: $tag size=$size build_seconds=$(( $(date +%s) - start )) sbom=$out/sbom.cdx.json"
