"""`scribe-tui mcp` serves our notebook tools to outside agents; `scribe-tui watch` shows them.

- :mod:`.service`: one server's model host, notebook tools and steering gate.
- :mod:`.server`: the tools over MCP (the official SDK), on stdio or streamable HTTP.
- :mod:`.watch_protocol`, :mod:`.watch_server`, :mod:`.watch_client`: the local
  authenticated socket between a server and the TUIs watching it.
- :mod:`.cli`: the two commands' options.

Nothing here imports textual; the watching TUI is :mod:`scribe_tui.ui.watch`.
"""
