"""`gadgetwatch completion bash|zsh|fish`: generated scripts, run in the real shells.

bash: the script is sourced and `_gadgetwatch` called with COMP_WORDS/COMP_CWORD set as
readline would, then COMPREPLY is read. zsh: the same function through zsh's bashcompinit
(zsh filters candidates by the typed prefix itself, so only membership is checked). fish:
`complete -C` asks fish for the completions of a command line, as pressing TAB does.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest
import structlog

from gadgetwatch.cli import main
from profiler.dirstore import DirectoryStore
from tests.gadgetwatch.clihelp import GADGETWATCH, PROCESS_TIMEOUT_S, run_process
from tests.profiler.test_cli import completed

PROFILE = "staging/deployment-web-nginx"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Profiles and files to complete, and the three scripts, generated once."""
    root = tmp_path_factory.mktemp("completion")
    DirectoryStore(root / "profiles").create_sync(completed())
    (root / "capture.jsonl").write_text("")
    (root / "config.yaml").write_text("")
    for shell in ("bash", "zsh", "fish"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["completion", shell]) == 0
        (root / f"completion.{shell}").write_text(out.getvalue())
    structlog.reset_defaults()
    return root


def _shell(argv: list[str], cwd: Path) -> str:
    env = {"PATH": f"{Path(GADGETWATCH).parent}:/usr/bin:/bin", "HOME": str(cwd)}
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


#: (words typed, the cursor's word last) -> the candidates expected
CASES: list[tuple[list[str], list[str]]] = [
    (["pro"], ["probe", "profile"]),
    (["profile", ""], ["advise", "diff", "export", "import", "list", "netpol", "seccomp", "show"]),
    (["profile", "list", "-o", ""], ["json", "table", "yaml"]),
    (["--log-level", "w"], ["warning"]),
    (
        ["rules", "list", "R100"],
        ["R1000", "R1001", "R1002", "R1003", "R1004", "R1005", "R1006", "R1007", "R1008", "R1009"],
    ),
    (["profile", "show", "--profiles-dir", "profiles", ""], [PROFILE]),
    (["profile", "--profiles-dir", "profiles", "seccomp", "st"], [PROFILE]),
    (["run", "--replay", "cap"], ["capture.jsonl"]),
    (["run", "--learning-p"], ["--learning-period"]),
    (["completion", ""], ["bash", "fish", "zsh"]),
]
#: What separates the answers of the cases in one shell run.
SEP = "=== next"


def _bash_words(words: list[str]) -> str:
    quoted = " ".join(f"'{w}'" for w in [GADGETWATCH, *words])
    return f"COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; _gadgetwatch"


def _answers(out: str) -> list[list[str]]:
    return [chunk.split() for chunk in out.split(SEP)][: len(CASES)]


def test_bash(work: Path) -> None:
    calls = "".join(
        f"{_bash_words(w)}; printf '%s\\n' \"${{COMPREPLY[@]}}\"; echo '{SEP}'; " for w, _ in CASES
    )
    out = _shell(["bash", "-c", f"source completion.bash; {calls}"], work)
    assert [sorted(a) for a in _answers(out)] == [e for _, e in CASES]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="scripts/setup.sh --dev installs zsh")
def test_zsh(work: Path) -> None:
    calls = "".join(
        f"{_bash_words(w)}; print -rl -- \"${{COMPREPLY[@]}}\"; echo '{SEP}'; " for w, _ in CASES
    )
    out = _shell(["zsh", "-f", "-c", f"source ./completion.zsh; setopt ksharrays; {calls}"], work)
    for (words, expected), found in zip(CASES, _answers(out), strict=True):
        assert set(expected) <= set(found), words


@pytest.mark.skipif(shutil.which("fish") is None, reason="scripts/setup.sh --dev installs fish")
def test_fish(work: Path) -> None:
    calls = "".join(
        f"complete -C'{' '.join(['gadgetwatch', *w])}'; echo '{SEP}'; " for w, _ in CASES
    )
    out = _shell(["fish", "--no-config", "-c", f"source completion.fish; {calls}"], work)
    chunks = out.split(SEP)[: len(CASES)]
    found = [sorted(r.split("\t")[0] for r in c.splitlines() if r.strip()) for c in chunks]
    assert found == [e for _, e in CASES]


def test_profile_names_come_from_the_store_named_on_the_line(work: Path) -> None:
    result = run_process(
        ["__complete", "profiles", "profile", "show", "--profiles-dir", str(work / "profiles")],
        tty=False,
    )
    assert (result.code, result.stdout, result.stderr) == (0, f"{PROFILE}\n", "")
    missing = run_process(["__complete", "profiles", "--profiles-dir", "/nonexistent"], tty=False)
    assert (missing.code, missing.stdout, missing.stderr) == (0, "", "")
