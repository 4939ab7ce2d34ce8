"""Bundled tiny subject models with planted secrets, and their trainer.

The registry (``list_organisms``, ``organism_info``, ``resolve_model_spec``) and
the scorers' ``answer_key`` import nothing heavy; training and verification load
torch only when called.
"""

from scribe_tui.organisms.keys import answer_key
from scribe_tui.organisms.registry import (
    OrganismInfo,
    UnknownOrganism,
    list_organisms,
    organism_info,
    resolve_model_spec,
)

__all__ = [
    "OrganismInfo",
    "UnknownOrganism",
    "answer_key",
    "list_organisms",
    "organism_info",
    "resolve_model_spec",
]
