"""Answer keys: the organisms' secrets, kept where only scorers look.

Keys never sit in a tree the notebook kernel or the model host may read:

- bundled organisms: ``scribe_tui/answer_keys/bundled.json`` (name -> key), package
  data of its own outside ``organisms/`` so the sandbox can exclude
  :data:`BUNDLED_KEYS_DIR` as one subtree;
- trained organisms: ``<key store>/<id>.json``, where ``id`` is the random id in the
  organism's ``organism.json`` and the key store is :func:`key_store_dir`.

Verify figures sit beside the keys (``measured.json``, ``<id>.verify.json``), never in
an organism's directory: a control's figures would tell the investigator it is one.

Only scorers (``verify``, ``bench``, tests) call :func:`answer_key` and
:func:`answer_key_record`; nothing under ``scribe_tui/runtime`` or ``scribe_tui/tools``
imports this module's readers.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from scribe_tui.organisms import registry

BUNDLED_KEYS_DIR = Path(__file__).resolve().parents[1] / "answer_keys"
KEY_DIR_ENV = "SCRIBE_KEY_DIR"


def key_store_dir() -> Path:
    """Where trained organisms' keys live: ``$SCRIBE_KEY_DIR``, else the user data dir."""
    override = os.environ.get(KEY_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("scribe-tui", appauthor=False) / "answer_keys"


def _organism_id(organism_dir: Path) -> str | None:
    meta_file = organism_dir / "organism.json"
    if not meta_file.is_file():
        return None
    organism_id = json.loads(meta_file.read_text()).get("id")
    # The id names a file in the key store: no path may be smuggled in through it.
    if organism_id is not None and not re.fullmatch(r"[0-9a-f]{32}", str(organism_id)):
        raise ValueError(f"{meta_file} has a malformed id {organism_id!r}")
    return organism_id


def _bundled_file() -> Path:
    return BUNDLED_KEYS_DIR / "bundled.json"


def _bundled_keys() -> dict[str, Any]:
    path = _bundled_file()
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a 0600 file (mkstemp creates it so)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_record(secret: str | None, behaviour: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    record: dict[str, Any] = {"secret": secret}
    if behaviour:
        record["behaviour"] = list(behaviour)
    return record


def store_answer_key(
    organism_dir: Path | str, secret: str | None, behaviour: tuple[str, ...] | list[str] = ()
) -> Path:
    """Write the key of the organism in ``organism_dir`` to the key store; returns the file.

    ``secret=None`` marks a control; ``behaviour`` (a backdoor's) lists the words that
    name it. The file is named by the random ``id`` in the organism's ``organism.json``.
    """
    path = _store_path(Path(organism_dir), ".json")
    _write_private(path, json.dumps(_key_record(secret, behaviour)) + "\n")
    return path


def store_circuit_key(organism_dir: Path | str, record: dict[str, Any]) -> Path:
    """Write a mechanistic organism's measured key (:mod:`scribe_tui.organisms.circuits`)
    to the key store; returns the file."""
    path = _store_path(Path(organism_dir), ".json")
    _write_private(path, json.dumps(record) + "\n")
    return path


def _store_path(organism_dir: Path, suffix: str) -> Path:
    organism_id = _organism_id(organism_dir)
    if not organism_id:
        raise ValueError(f"{organism_dir / 'organism.json'} has no id to key the secret by")
    store = key_store_dir()
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    return store / f"{organism_id}{suffix}"


def bundle_answer_key(name: str, key: AnswerKey) -> None:
    """Record ``key`` as the key of the bundled organism ``name``."""
    value: Any = key.secret
    if key.mechanistic:
        value = {"secret": key.secret, "probe": dict(key.probe)}
        if key.circuit is not None:
            value.update(circuit=list(key.circuit), roles=dict(key.roles))
        if key.layers is not None:
            value.update(layers=list(key.layers), top_layer=key.top_layer)
        if key.kind == "direction":
            value.update(
                direction=None if key.direction is None else list(key.direction),
                layer=key.layer,
                effect=key.effect,
            )
    elif key.aliases or key.behaviour:
        value = {**_key_record(key.secret, key.behaviour), "aliases": list(key.aliases)}
    keys = {**_bundled_keys(), name: value}
    BUNDLED_KEYS_DIR.mkdir(exist_ok=True)
    _bundled_file().write_text(json.dumps(keys, indent=2, sort_keys=True) + "\n")


def _measured_file() -> Path:
    return BUNDLED_KEYS_DIR / "measured.json"


def _is_bundled(name_or_dir: str | Path) -> str | None:
    text = str(name_or_dir).removeprefix(registry.PREFIX)
    path = Path(text).expanduser()
    if (path / "organism.json").is_file():
        return path.name if path.resolve().parent == registry.BUNDLED_DIR else None
    return text


def store_measured(name_or_dir: str | Path, figures: dict[str, Any]) -> Path:
    """Keep an organism's verify figures beside its key (they would reveal a control)."""
    name = _is_bundled(name_or_dir)
    if name is not None:
        path = _measured_file()
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[name] = figures
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path
    path = _store_path(Path(name_or_dir), ".verify.json")
    _write_private(path, json.dumps(figures) + "\n")
    return path


def measured(name_or_dir: str | Path) -> dict[str, Any] | None:
    """The stored verify figures of an organism, or None when it was never measured."""
    name = _is_bundled(name_or_dir)
    if name is not None:
        path = _measured_file()
        return json.loads(path.read_text()).get(name) if path.is_file() else None
    organism_id = _organism_id(Path(name_or_dir))
    path = key_store_dir() / f"{organism_id}.verify.json"
    return json.loads(path.read_text()) if organism_id and path.is_file() else None


@dataclass(frozen=True)
class AnswerKey:
    """An organism's key: its secret and the other spellings that also score as correct.

    A mechanistic organism's key holds the ``probe`` that measured it (its ``kind`` says
    which) and what was measured: an induction circuit (``circuit``, component names,
    empty for a control, whose ``secret`` is None; each component's role); a recall
    organism's recall ``layers`` (and their MLPs as ``circuit``), the ``top_layer``; a
    direction organism's unit ``direction``, the ``layer`` it was read at and its ablation
    ``effect`` (None for a control).
    """

    secret: str | None
    aliases: tuple[str, ...] = ()
    behaviour: tuple[str, ...] = ()  # a backdoor's: the words that name its behaviour
    circuit: tuple[str, ...] | None = None
    roles: Mapping[str, str] = field(default_factory=dict)
    probe: Mapping[str, Any] = field(default_factory=dict)  # empty: not a mechanistic organism
    layers: tuple[int, ...] | None = None
    top_layer: int | None = None
    direction: tuple[float, ...] | None = None
    layer: int | None = None
    effect: float | None = None

    @property
    def mechanistic(self) -> bool:
        """True when the key was measured on the organism (a circuit, layers, a direction)."""
        return self.circuit is not None or bool(self.probe)

    @property
    def kind(self) -> str:
        """The mechanistic kind whose probe measured the key ("" for a planted secret)."""
        return str(self.probe.get("kind", "induction")) if self.mechanistic else ""

    @property
    def control(self) -> bool:
        """True for a control organism: nothing was planted, so there is no secret."""
        return self.secret is None


def _record(value: Any) -> AnswerKey:
    """An :class:`AnswerKey` from a key file's JSON or a ``bundled.json`` value."""
    if isinstance(value, dict) and ("circuit" in value or "probe" in value):
        secret = value["secret"]
        circuit, layers, vector = value.get("circuit"), value.get("layers"), value.get("direction")
        return AnswerKey(
            None if secret is None else str(secret),
            circuit=None if circuit is None else tuple(str(c) for c in circuit),
            roles={str(k): str(v) for k, v in (value.get("roles") or {}).items()},
            probe=dict(value.get("probe") or {}),
            layers=None if layers is None else tuple(int(n) for n in layers),
            top_layer=value.get("top_layer"),
            direction=None if vector is None else tuple(float(x) for x in vector),
            layer=value.get("layer"),
            effect=value.get("effect"),
        )
    if isinstance(value, dict):
        secret = value["secret"]
        aliases = tuple(str(alias) for alias in value.get("aliases") or ())
        behaviour = tuple(str(word) for word in value.get("behaviour") or ())
        return AnswerKey(None if secret is None else str(secret), aliases, behaviour)
    return AnswerKey(None if value is None else str(value))


def answer_key_record(name_or_dir: str | Path) -> AnswerKey:
    """The whole key, for scoring only: bundled name, or an organism directory.

    A key file holds ``{"secret": ..., "aliases": [...], "behaviour": [...]}`` (aliases and
    behaviour optional), or ``{"secret": null}`` for a control; ``bundled.json`` maps a
    name to the same record, or to its secret (null for a control).
    """
    text = str(name_or_dir).removeprefix(registry.PREFIX)
    path = Path(text).expanduser()
    looked: list[str] = []
    organism_id = _organism_id(path)
    if organism_id:
        key_file = key_store_dir() / f"{organism_id}.json"
        if key_file.is_file():
            return _record(json.loads(key_file.read_text()))
        looked.append(str(key_file))
    # A bundled organism given by its directory is keyed by its name.
    name = path.name if path.resolve().parent == registry.BUNDLED_DIR else text
    keys = _bundled_keys()
    if name in keys:
        return _record(keys[name])
    looked.append(f"{_bundled_file()} (bundled: {', '.join(sorted(keys)) or 'none'})")
    raise registry.UnknownOrganism(f"no answer key for {text!r}; looked in {' and '.join(looked)}")


def answer_key(name_or_dir: str | Path) -> str:
    """The secret, for scoring only: bundled name, or an organism directory.

    Raises :class:`~scribe_tui.organisms.registry.UnknownOrganism` for a control, which
    has no secret; use :func:`answer_key_record` to score controls.
    """
    key = answer_key_record(name_or_dir)
    if key.secret is None:
        raise registry.UnknownOrganism(f"{str(name_or_dir)!r} is a control: it has no secret")
    return key.secret
