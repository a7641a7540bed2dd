"""The CEL engine loads and evaluates without the `cel` package's command-line dependencies.

The image uninstalls typer, rich, prompt-toolkit and pygments (the package's interactive CLI,
Containerfile), so `detector.cel_engine` must load the extension module without the package's
``__init__``. A fresh interpreter with those packages made unimportable compiles and runs the
shipped CEL catalogue and the examples.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
for name in ("typer", "rich", "prompt_toolkit", "pygments", "cel.cli", "cel.stdlib"):
    sys.modules[name] = None  # an import of it now raises ImportError
from pathlib import Path
from detector.ruleset import cel_catalogue, load_files
from detector.rules import default_catalogue
from detector import cel_engine
catalogue = cel_catalogue(Path("deploy/rules"))
examples = load_files([Path("examples/rules")], catalogue=default_catalogue())
assert not examples.problems, examples.problems
program = cel_engine.compile('event.path.startsWith("/etc/")')
context = cel_engine.new_context({"event": {"path": "/etc/shadow"}}, {})
assert program.execute(context) is True
print(len(catalogue.rules), len(examples.rules), "cel" in sys.modules)
"""


def test_the_engine_works_without_the_cli_packages() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["24", "3", "False"]
