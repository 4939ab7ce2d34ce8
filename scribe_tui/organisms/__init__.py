"""Bundled tiny subject models with planted secrets, and their trainer.

The registry (``list_organisms``, ``organism_info``, ``resolve_model_spec``,
``answer_key``) imports nothing heavy; training and verification load torch
only when called.
"""

from scribe_tui.organisms.registry import (
    OrganismInfo,
    UnknownOrganism,
    answer_key,
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
