"""``python -m benchmarks.independent_zoo``: see :mod:`benchmarks.independent_zoo.build`."""

import sys

from benchmarks.independent_zoo.build import main

sys.exit(main())
