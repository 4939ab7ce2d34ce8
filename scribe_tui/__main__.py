from scribe_tui.cli import main

raise SystemExit(main())
