"""``python -m fmlib``: the ``fmrobust`` command line (`fmlib.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
