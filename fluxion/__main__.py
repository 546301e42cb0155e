"""``python -m fluxion ...`` runs the command-line interface."""

from fluxion.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
