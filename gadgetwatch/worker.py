"""`python -m gadgetwatch.worker`: the entry point of one worker process (`workers.py`).

A module of its own so that `gadgetwatch.workers` is imported under its real name in the
worker too: the spec the supervisor pickles names `gadgetwatch.workers.WorkerSpec`, which a
module run as `__main__` would define a second time under another name.
"""

from __future__ import annotations

import sys

from gadgetwatch.workers import worker_main

if __name__ == "__main__":
    sys.exit(worker_main())
