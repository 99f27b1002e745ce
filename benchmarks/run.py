"""Run the gan_optim benchmark: the same runner as ``gan-optim bench``.

    python benchmarks/run.py             # full table (minutes on one CPU thread)
    python benchmarks/run.py --quick     # small models, seconds
    python benchmarks/run.py --json      # JSON list of rows
    python benchmarks/run.py --device cuda

All options: ``python benchmarks/run.py --help``. The runner itself lives in
:mod:`gan_optim_benchmarks.bench`, so the installed command and this script measure the
same thing.
"""

from __future__ import annotations

import sys

from gan_optim_benchmarks.bench import main

if __name__ == "__main__":
    sys.exit(main("bench", sys.argv[1:]))
