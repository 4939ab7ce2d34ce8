"""Where organisms live and what they are (never their secrets).

Bundled organisms sit in ``bundled/<name>/`` (``model/``, ``base/``,
``organism.json``, ``card.md``); a trained one has the same layout in any
directory. Their answer keys live elsewhere, read only by scorers: see
:mod:`scribe_tui.organisms.keys`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = PACKAGE_DIR / "bundled"
PREFIX = "organism:"


@dataclass(frozen=True)
class OrganismInfo:
    """Public facts about one organism (no secret)."""

    name: str
    kind: str
    path: Path  # the organism directory (holds model/, base/, organism.json)
    task: str  # the investigator's task, e.g. "find the secret word"
    description: str  # what the investigator is told about the model
    difficulty: str = "standard"  # or "hardened"
    tokenizer: str = "word"  # or "bpe"
    template: str = "plain"  # or "chatml"


class UnknownOrganism(LookupError):
    """No such organism (or no key for it); the message is one line saying what exists."""


def _available() -> list[str]:
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "organism.json").is_file())


def _unknown(what: str) -> UnknownOrganism:
    names = ", ".join(_available()) or "none"
    return UnknownOrganism(f"unknown organism {what!r}; available: {names}")


def _info(path: Path, name: str | None = None) -> OrganismInfo:
    meta = json.loads((path / "organism.json").read_text())
    return OrganismInfo(
        name=name or path.name,
        kind=meta["kind"],
        path=path,
        task=meta["task"],
        description=meta["description"],
        difficulty=meta.get("difficulty", "standard"),
        tokenizer=meta.get("tokenizer", "word"),
        template=meta.get("template", "plain"),
    )


def list_organisms() -> list[OrganismInfo]:
    """Every bundled organism, sorted by name."""
    return [_info(BUNDLED_DIR / name) for name in _available()]


def organism_info(name: str) -> OrganismInfo:
    """One organism by bundled name (``organism:`` prefix allowed) or directory path."""
    name = name.removeprefix(PREFIX)
    if name in _available():
        return _info(BUNDLED_DIR / name)
    path = Path(name).expanduser()
    if (path / "organism.json").is_file():
        return _info(path.resolve())
    raise _unknown(name)


def resolve_model_spec(spec: str) -> tuple[Path, Path | None]:
    """``organism:NAME`` or an organism directory -> (model dir, base dir or None).

    Raises :class:`UnknownOrganism` for anything else (hub ids and plain model
    directories are the caller's business).
    """
    if spec.startswith(PREFIX) or (Path(spec).expanduser() / "organism.json").is_file():
        info = organism_info(spec)
        meta = json.loads((info.path / "organism.json").read_text())
        base = info.path / meta["base"] if meta.get("base") else None
        return info.path / meta.get("model", "model"), base if base and base.is_dir() else None
    raise _unknown(spec)
