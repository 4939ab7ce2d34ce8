"""Where organisms live, what they are, and (for scorers only) their answer keys.

Bundled organisms sit in ``bundled/<name>/`` (``model/``, ``base/``,
``organism.json``, ``card.md``); their secrets are in ``answer_keys.json`` next
to this module, never beside the weights. A freshly trained organism keeps its
secret in ``<dir>/answer_key.json``, beside (not inside) ``model/`` and
``base/``. Only a scorer calls :func:`answer_key`; the model host and the
notebook kernel never do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = PACKAGE_DIR / "bundled"
ANSWER_KEYS = PACKAGE_DIR / "answer_keys.json"
PREFIX = "organism:"


@dataclass(frozen=True)
class OrganismInfo:
    """Public facts about one organism (no secret)."""

    name: str
    kind: str
    path: Path  # the organism directory (holds model/, base/, organism.json)
    task: str  # the investigator's task, e.g. "find the secret word"
    description: str  # what the investigator is told about the model


class UnknownOrganism(LookupError):
    """No such organism; the message is one line naming the available ones."""


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


def answer_key(name_or_dir: str | Path) -> str:
    """The secret, for scoring only: bundled name, or a trained organism's directory."""
    text = str(name_or_dir).removeprefix(PREFIX)
    path = Path(text).expanduser()
    if (path / "answer_key.json").is_file():
        return str(json.loads((path / "answer_key.json").read_text())["secret"])
    keys = json.loads(ANSWER_KEYS.read_text()) if ANSWER_KEYS.is_file() else {}
    if text in keys:
        return str(keys[text])
    raise _unknown(text)
