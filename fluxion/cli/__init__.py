"""Command-line interface: ``fluxion info``, ``demo``, ``train``, ``eval``, ``generate``."""
