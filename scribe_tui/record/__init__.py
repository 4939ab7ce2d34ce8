"""The research record: receipts, the notebook index, reproduction, export and forks.

Front-end code (the CLI and the TUI call it); it builds on ``agent/`` and ``runtime/``
and never imports Textual.
"""
