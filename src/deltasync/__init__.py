"""deltasync: a replicated, deterministic exchange core for crypto options."""

__version__ = "0.1.0"
