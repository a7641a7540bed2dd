"""Regenerate the Python code for `gadget_service.proto` (run: `python -m protos.generate`).

protoc runs with the repository root as include path and the proto as `protos/...`, so the
generated `_pb2_grpc.py` imports `from protos import gadget_service_pb2` (a package import that
works from any working directory) without rewriting grpcio-tools' output. The test
`tests/protos/test_generated.py` regenerates into a temporary directory and compares, so the
committed files cannot drift from the proto.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = "protos/gadget_service.proto"


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules under `out_dir/protos/` and return their paths."""
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(ROOT / PROTO),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")
    return sorted((out_dir / "protos").glob("gadget_service_pb2*"))


if __name__ == "__main__":
    written = generate(ROOT)
    sys.stdout.write("".join(f"{p.relative_to(ROOT)}\n" for p in written))
