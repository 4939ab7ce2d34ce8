"""``python -m scribe_tui.organisms``."""

import sys

from scribe_tui.organisms.cli import main

sys.exit(main())
