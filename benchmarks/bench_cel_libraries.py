"""The two Python CEL libraries on gadgetwatch's rule workload: the comparison behind the choice.

    .venv/bin/python benchmarks/bench_cel_libraries.py [--calls 20000]

`common-expression-language` (import name `cel`, a Rust core) and `cel-python` (import name
`celpy`, pure Python) compile the same three rule expressions (an open-event rule calling a
helper, a regular-expression rule, a comprehension over exec arguments) and evaluate them on
a realistic event map, the conversion of the event into the library's values included (that
is what the detector pays per evaluation). Printed per library: compile time, evaluation time
per call, the message of a syntax error and of an evaluation error (do they carry a
position?), and whether the library offers a cost limit. The README's "Dependencies" section
quotes a run of this script.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import cel
import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

EXPRESSIONS = {
    "open + helper": 'event.open_path.startsWith("/etc/") && !was_opened(event.open_path) '
    '&& event.process.comm != "apt"',
    "regex": 'event.open_path.matches("^/proc/(self|[0-9]+)(/task/[0-9]+)?/environ$")',
    "comprehension": 'event.args.exists(a, a.contains("/dev/tcp/")) '
    '|| (event.args.exists(a, a == "-i") && !event.tty)',
}

EVENT: dict[str, Any] = {
    "open_path": "/etc/nginx/conf.d/default.conf",
    "flags": ["O_RDONLY", "O_CLOEXEC"],
    "args": ["/bin/sh", "-c", "nginx -g 'daemon off;'"],
    "tty": False,
    "process": {"comm": "nginx", "pid": 4242, "uid": 101},
}

SYNTAX_ERROR = 'event.open_path.startsWith("/etc/") &&'
EVAL_ERROR = "event.args[7] == 'x'"


def was_opened(path: str) -> bool:
    return path == "/etc/hosts"


def timed(fn: Callable[[], object], n: int) -> float:
    """Median of 5 rounds, microseconds per call."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def rust_cel(calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {"library": "common-expression-language"}
    out["compile_us"] = {
        k: timed(partial(cel.compile, e), max(calls // 20, 50)) for k, e in EXPRESSIONS.items()
    }
    context = cel.Context(functions={"was_opened": was_opened})
    evals = {}
    results: dict[str, bool] = {}
    for name, expr in EXPRESSIONS.items():
        program = cel.compile(expr)

        def run(p: cel.Program = program) -> object:
            context.add_variable("event", EVENT)
            return p.execute(context)

        results[name] = bool(run())
        evals[name] = timed(run, calls)
    out["eval_us"] = evals
    out["results"] = results
    try:
        cel.compile(SYNTAX_ERROR)
    except ValueError as exc:
        found = re.search(r"<input>:\d+:\d+: [^\n]*", str(exc))
        out["syntax_error"] = (found.group(0) if found else str(exc))[:90]
    try:
        context.add_variable("event", EVENT)
        cel.compile(EVAL_ERROR).execute(context)
    except (ValueError, RuntimeError, IndexError) as exc:
        out["eval_error"] = f"{type(exc).__name__}: {str(exc)[:90]}"
    out["cost_limit"] = "none exposed"
    return out


def cel_python(calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {"library": "cel-python"}
    env = celpy.Environment()
    out["compile_us"] = {
        k: timed(partial(env.compile, e), max(calls // 200, 5)) for k, e in EXPRESSIONS.items()
    }

    def opened(path: Any) -> celtypes.BoolType:
        return celtypes.BoolType(was_opened(str(path)))

    evals = {}
    results: dict[str, bool] = {}
    for name, expr in EXPRESSIONS.items():
        program = env.program(env.compile(expr), functions={"was_opened": opened})

        def run(p: Any = program) -> object:
            return p.evaluate({"event": json_to_cel(EVENT)})

        results[name] = bool(run())
        evals[name] = timed(run, max(calls // 20, 20))
    out["eval_us"] = evals
    out["results"] = results
    try:
        env.compile(SYNTAX_ERROR)
    except CELParseError as exc:
        out["syntax_error"] = (
            " ".join(str(exc).split())[-90:] + f" (line {exc.line}, col {exc.column})"
        )
    try:
        env.program(env.compile(EVAL_ERROR)).evaluate({"event": json_to_cel(EVENT)})
    except CELEvalError as exc:
        out["eval_error"] = f"{type(exc).__name__}: {str(exc)[:90]}"
    out["cost_limit"] = "none exposed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"python {sys.version.split()[0]}  cpus: {os.cpu_count()}  "
        f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    both = (
        ("common-expression-language", rust_cel(args.calls)),
        ("cel-python", cel_python(args.calls)),
    )
    for dist, result in both:
        version = importlib.metadata.version(dist)
        print(f"\n{result['library']} {version}")
        for name in EXPRESSIONS:
            print(
                f"  {name:<14} compile {result['compile_us'][name]:>9.1f} us   "
                f"evaluate {result['eval_us'][name]:>8.1f} us/call"
            )
        print(f"  syntax error:     {result.get('syntax_error', '(none raised)')}")
        print(f"  evaluation error: {result.get('eval_error', '(none raised)')}")
        print(f"  cost limit:       {result['cost_limit']}")
    agree = both[0][1]["results"] == both[1][1]["results"]
    print(f"\nresults agree: {agree} {both[0][1]['results']}")


if __name__ == "__main__":
    main()
