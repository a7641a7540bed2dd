"""gadgetwatch: the composition root (CLI, configuration, wiring, service lifecycle).

Domain logic lives in `gadgetclient`, `profiler`, `detector` and `exporters`; this package only
parses configuration, builds those pieces and runs them. Nothing imports it.
"""

__version__ = "0.1.0.dev0"
