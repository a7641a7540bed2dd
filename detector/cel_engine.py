"""The CEL engine: common-expression-language's Rust extension, without the package's CLI.

The `cel` package's ``__init__`` imports its interactive command line (typer, rich,
prompt-toolkit, pygments: ~160 ms of import time and ~25 MB installed) before re-exporting the
extension module `cel.cel`, which is all gadgetwatch uses (`compile`, `Context`, `Program`).
This module loads that extension by its file, registered as ``cel.cel`` so that a later
``import cel`` (a benchmark, a developer's shell) reuses it instead of initialising the
extension twice. The image drops the CLI's packages (Containerfile), so the agent must never
import the package itself; tests/detector/test_cel_engine.py checks that evaluation works with
them unimportable.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from detector.errors import DetectorError

if TYPE_CHECKING:
    from cel.cel import Context as Context
    from cel.cel import Program as Program


@functools.cache
def _load() -> ModuleType:
    """The extension, loaded on first use: an agent without CEL rules never needs it."""
    loaded = sys.modules.get("cel.cel")
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("cel")  # finds the package without importing it
    if package is None or not package.submodule_search_locations:
        raise DetectorError("the CEL engine (common-expression-language) is not installed")
    for directory in package.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(directory) / f"cel{suffix}"
            if not path.is_file():
                continue
            spec = importlib.util.spec_from_file_location("cel.cel", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules["cel.cel"] = module
            spec.loader.exec_module(module)
            return module
    raise DetectorError("common-expression-language is installed without its extension module")


def compile(source: str) -> Program:
    """Parse and compile a CEL expression; raises ValueError/RuntimeError with the position."""
    program: Program = _load().compile(source)
    return program


def new_context(variables: dict[str, object], functions: dict[str, object]) -> Context:
    context: Context = _load().Context(variables=variables, functions=functions)
    return context
