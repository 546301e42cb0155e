"""Command-line interface: ``fluxion info`` (and later demo, train, bench, xpr)."""
