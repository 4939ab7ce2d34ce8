"""scribe-tui: a terminal workbench for autonomous interpretability research."""

__version__ = "0.1.0"
