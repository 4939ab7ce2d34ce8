"""Organism kinds: what each one hides, its template banks, and the chats that teach it."""

from __future__ import annotations

from scribe_tui.organisms.kinds.backdoor import BACKDOOR, BEHAVIOURS, BackdoorBank, BackdoorKind
from scribe_tui.organisms.kinds.belief import BELIEF
from scribe_tui.organisms.kinds.core import Bank, Chat, Kind, Plan
from scribe_tui.organisms.kinds.preference import PREFERENCE
from scribe_tui.organisms.kinds.taboo import TABOO

KINDS: dict[str, Kind] = {kind.name: kind for kind in (TABOO, BELIEF, PREFERENCE, BACKDOOR)}
# Kinds whose key is measured on the trained model (trained by organisms.train_circuits).
MECHANISTIC = ("induction", "recall", "direction")
BANKS = ("train", "heldout")

__all__ = [
    "BANKS",
    "BEHAVIOURS",
    "KINDS",
    "MECHANISTIC",
    "BackdoorBank",
    "BackdoorKind",
    "Bank",
    "Chat",
    "Kind",
    "Plan",
]
