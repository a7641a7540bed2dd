"""One module per `gadgetwatch` subcommand; each exposes ``register(subparsers)``."""
