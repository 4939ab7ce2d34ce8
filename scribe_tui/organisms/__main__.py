"""``python -m scribe_tui.organisms``."""

import sys

from scribe_tui.cli.organisms import main

sys.exit(main())
