"""The notebook tool set the agent calls: schemas, dispatch and result rendering."""

from scribe_tui.tools.notebook_tools import DEFAULT_SETUP, NotebookTools, Session, ToolResult
from scribe_tui.tools.schemas import TOOL_DEFINITIONS, TOOL_NAMES, ToolInputError

__all__ = [
    "DEFAULT_SETUP",
    "TOOL_DEFINITIONS",
    "TOOL_NAMES",
    "NotebookTools",
    "Session",
    "ToolInputError",
    "ToolResult",
]
