"""Write a CycloneDX SBOM of a container image's file tree (a tar of its root filesystem).

Why from the file tree: the SBOM must list what the image holds, not what a lock file meant to
install. Debian packages come from the image's dpkg database (``var/lib/dpkg/status``), Python
distributions from the ``*.dist-info/METADATA`` files of every site-packages directory. The
output is deterministic for the same tree (the serial number is derived from the component
list and there is no timestamp), so two builds of the same inputs give the same file.

    python scripts/sbom.py ROOTFS.tar --name gadgetwatch --version 0.1.0 -o sbom.cdx.json
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import re
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

_DIST_INFO = re.compile(r"(^|/)(usr/lib|opt)/.*site-packages/[^/]+\.dist-info/METADATA$")
_STATUS = "var/lib/dpkg/status"


def _member(tar: tarfile.TarFile, name: str) -> str:
    handle = tar.extractfile(name)
    if handle is None:
        raise SystemExit(f"sbom: {name} is not a regular file in the image")
    return handle.read().decode("utf-8", errors="replace")


def debian_components(status: str) -> list[dict[str, Any]]:
    """Installed packages of a dpkg status file as CycloneDX components."""
    components = []
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Status") != "install ok installed":
            continue
        name, version, arch = fields["Package"], fields["Version"], fields["Architecture"]
        purl = f"pkg:deb/debian/{name}@{quote(version)}?arch={arch}"
        components.append(
            {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
        )
    return components


def python_components(metadata_files: list[str]) -> list[dict[str, Any]]:
    """Python distributions (METADATA texts) as CycloneDX components."""
    components = []
    for text in metadata_files:
        meta = email.parser.HeaderParser().parsestr(text)
        name, version = meta["Name"], meta["Version"]
        normalized = re.sub(r"[-_.]+", "-", name).lower()
        purl = f"pkg:pypi/{normalized}@{quote(version)}"
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
        }
        licence = meta.get("License-Expression") or meta.get("License")
        if licence and len(licence) < 100:  # some put the whole licence text here
            component["licenses"] = [{"expression": licence}]
        components.append(component)
    return components


def sbom(rootfs: Path, name: str, version: str) -> dict[str, Any]:
    with tarfile.open(rootfs) as tar:
        names = tar.getnames()
        normalized = {n.removeprefix("./"): n for n in names}
        if _STATUS not in normalized:
            raise SystemExit(f"sbom: no {_STATUS} in {rootfs}: not a Debian-based image")
        debs = debian_components(_member(tar, normalized[_STATUS]))
        metadata = [_member(tar, n) for k, n in normalized.items() if _DIST_INFO.search(k)]
    components = sorted(
        {c["bom-ref"]: c for c in [*debs, *python_components(metadata)]}.values(),
        key=lambda c: str(c["bom-ref"]),
    )
    digest = hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, digest)}",
        "version": 1,
        "metadata": {
            "component": {
                "type": "container",
                "bom-ref": f"{name}@{version}",
                "name": name,
                "version": version,
            },
            "tools": {"components": [{"type": "application", "name": "gadgetwatch-sbom"}]},
        },
        "components": components,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rootfs", type=Path, help="tar of the image's root filesystem")
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    document = sbom(args.rootfs, args.name, args.version)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    counts = {"deb": 0, "pypi": 0}
    for component in document["components"]:
        counts[str(component["purl"]).split(":")[1].split("/")[0]] += 1
    sys.stderr.write(
        f"sbom: {counts['deb']} Debian packages, {counts['pypi']} Python distributions\n"
    )


if __name__ == "__main__":
    main()
