"""Delete the parts of the Kubernetes client that gadgetwatch never loads (image build only).

    python scripts/prune_kubernetes.py SITE_PACKAGES

kubernetes 37 installs one module per API group version (``kubernetes/client/api``, ~60) and per
object type (``kubernetes/client/models``, ~850): with bytecode about 48 MB, a third of the image.
gadgetwatch calls six of the APIs (`KEEP_APIS`; tests/image/test_prune.py fails when the code
uses one that is not listed). The client's package ``__init__`` files import lazily (a name maps
to its module, loaded on first use), and each API module imports, at its top, the model of every
type its methods send or return, each model the models of its fields. So importing the six API
modules (and the client's other subpackages: config, watch, stream, ...) loads exactly the models
a response can be deserialized into; every API and model module that is still not loaded then is
unreachable and is deleted. Nothing else of the client changes.

Run in a child interpreter of the target environment (the one that will run gadgetwatch), before
its bytecode is compiled. Prints what it removed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: The API classes gadgetwatch instantiates (gadgetwatch/k8s.py, profiler/k8s_store.py,
#: detector/k8s_source.py, gadgetclient's port-forward through CoreV1Api).
KEEP_APIS = (
    "ApiextensionsV1Api",
    "AppsV1Api",
    "AuthorizationV1Api",
    "BatchV1Api",
    "CoreV1Api",
    "CustomObjectsApi",
)
#: Prunable packages, relative to site-packages.
PRUNED = ("kubernetes/client/api", "kubernetes/client/models")

_PROBE = """
import json, sys
import kubernetes
from kubernetes.stream import portforward
from kubernetes import client
for name in sys.argv[1:]:
    getattr(client, name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("kubernetes.client."))))
"""


def loaded_modules(python: str, site: Path) -> set[str]:
    """Modules of ``kubernetes.client`` loaded by importing what gadgetwatch uses (raises when
    one of them cannot be imported)."""
    out = subprocess.run(
        [python, "-c", _PROBE, *KEEP_APIS],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return set(json.loads(out.stdout))


def prune(site: Path, loaded: set[str]) -> tuple[int, int]:
    """Delete unloaded modules of the `PRUNED` packages; returns (files, bytes) removed."""
    files = size = 0
    for package in PRUNED:
        directory = site / package
        dotted = package.replace("/", ".")
        for path in sorted(directory.glob("*.py")):
            if path.stem == "__init__" or f"{dotted}.{path.stem}" in loaded:
                continue
            size += path.stat().st_size
            files += 1
            path.unlink()
        cache = directory / "__pycache__"
        if cache.is_dir():
            for compiled in cache.glob("*.pyc"):
                stem = compiled.name.split(".", 1)[0]
                if stem != "__init__" and f"{dotted}.{stem}" not in loaded:
                    size += compiled.stat().st_size
                    compiled.unlink()
    return files, size


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    site = Path(argv[1])
    loaded = loaded_modules(sys.executable, site)
    files, size = prune(site, loaded)
    kept = sum(1 for m in loaded if m.startswith(tuple(f"{p.replace('/', '.')}." for p in PRUNED)))
    print(f"prune_kubernetes: removed {files} modules ({size // 1024} KiB), kept {kept}")
    # Everything gadgetwatch uses still imports, and loads the same modules.
    if loaded_modules(sys.executable, site) != loaded:
        print("prune_kubernetes: the pruned client loads other modules", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
