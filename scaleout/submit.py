"""The entry `spark-submit` runs: `spark-submit [its options] scaleout/submit.py spark score ...` runs
the `centinela` command in the driver spark-submit starts, under the master it was given."""

from __future__ import annotations

import sys

from cli.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
