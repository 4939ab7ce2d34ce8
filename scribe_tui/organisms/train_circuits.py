"""Train a mechanistic organism on CPU, then measure its answer key.

Kinds (:data:`DEFAULTS`): ``induction`` (:mod:`~scribe_tui.organisms.kinds.induction`, key
by :mod:`~scribe_tui.organisms.circuits`), ``recall`` (:mod:`~scribe_tui.organisms.kinds.
recall`, key by :mod:`~scribe_tui.organisms.recall_key`) and ``direction``
(:mod:`~scribe_tui.organisms.kinds.direction`, key by :mod:`~scribe_tui.organisms.
direction_key`). Output layout (``DIR``)::

    DIR/model/           the organism (safetensors + tokenizer)
    DIR/organism.json    random id, kind, task, training config: no key, no control flag

The key is measured on the trained model and written to the key store
(:mod:`scribe_tui.organisms.keys`), never into ``DIR``. A control's files have the same
shape as any other's.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scribe_tui.organisms.kinds import induction
from scribe_tui.organisms.train import TrainConfig, _new_model, _progress, _run_phase, _save


@dataclass(frozen=True)
class CircuitConfig:
    """Architecture and optimisation of a mechanistic organism (recorded in organism.json)."""

    architecture: str = "llama"  # or "gpt2" (learned positions: slower to learn copying)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    n_positions: int = 64
    steps: int = 1500  # induction appeared after about 1000 in trial runs
    batch_size: int = 32
    lr: float = 1e-3
    threads: int = 1  # see TrainConfig.threads
    mlp_ratio: int = 0  # MLP width over n_embd; 0: attention only (MLPs zero and frozen)


# Each kind's default shape; recall and direction need MLPs (a lookup, a classifier).
DEFAULTS: dict[str, CircuitConfig] = {
    "induction": CircuitConfig(),
    # Trial runs: at 800 steps recall knew two facts in three; by 1500 every fact.
    "recall": CircuitConfig(n_layer=4, steps=1500, lr=3e-3, mlp_ratio=4),
    "direction": CircuitConfig(n_layer=4, steps=600, lr=3e-3, mlp_ratio=4),
}


def _batches(
    tokenizer: Any,
    language: induction.Language,
    rng: random.Random,
    cfg: CircuitConfig,
    repeats: bool,
) -> Iterator[Any]:
    import torch

    bos = tokenizer.bos_token_id
    offset = tokenizer.convert_tokens_to_ids(language.words[0])
    # The word tokenizer numbers the sorted vocabulary consecutively after its specials.
    ids = [tokenizer.convert_tokens_to_ids(w) for w in language.words]
    if ids != list(range(offset, offset + len(ids))):
        raise ValueError("the tokenizer does not number the vocabulary consecutively")
    while True:
        rows = [
            [bos, *(offset + w for w in language.sequence(cfg.n_positions - 1, rng, repeats))]
            for _ in range(cfg.batch_size)
        ]
        yield torch.tensor(rows, dtype=torch.long)


def _new_llama(tokenizer: Any, cfg: CircuitConfig) -> Any:
    """A tiny Llama: rotary positions make a previous-token head easy to learn."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.n_embd,
            # Attention only: n_embd wide, zero and frozen (see _attention_only).
            intermediate_size=cfg.n_embd * (cfg.mlp_ratio or 1),
            num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_head,
            max_position_embeddings=cfg.n_positions,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
    )
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def _attention_only(model: Any) -> None:
    """Zero and freeze every MLP: the model's components are then its heads alone."""
    import torch

    from scribe_tui.techniques.components import layout

    with torch.no_grad():
        for block in layout(model).blocks:
            for p in block.mlp.parameters():
                p.zero_()
                p.requires_grad_(False)


def train_induction(
    seed: int,
    out: Path | str,
    *,
    control: bool = False,
    config: CircuitConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train an induction organism (``control``: no repeated spans): see
    :func:`train_mechanistic`."""
    return train_mechanistic(
        induction.NAME, seed, out, control=control, config=config, progress=progress
    )


def _kind(name: str) -> tuple[Any, Any, Any]:
    """(kind module, tokenizer, batches(tokenizer, rng, cfg, control)) of a mechanistic kind."""
    from scribe_tui.organisms.kinds import direction, recall

    if name == induction.NAME:
        language = induction.Language.make()
        tokenizer = induction.make_tokenizer()

        def circuit_batches(tok: Any, rng: random.Random, cfg: CircuitConfig, control: bool):
            return _batches(tok, language, rng, cfg, not control)

        return induction, tokenizer, circuit_batches
    if name in (recall.NAME, direction.NAME):
        module = recall if name == recall.NAME else direction

        def kind_batches(tok: Any, rng: random.Random, cfg: CircuitConfig, control: bool):
            return module.batches(tok, rng, cfg.batch_size, cfg.n_positions, control)

        return module, module.make_tokenizer(), kind_batches
    raise ValueError(f"unknown mechanistic kind {name!r}; choose from {', '.join(DEFAULTS)}")


def measure(kind: str, model: Any, tokenizer: Any, probe: dict[str, Any] | None = None) -> dict:
    """The measured key of an organism of ``kind`` (``probe``: the key's own, to re-measure)."""
    from scribe_tui.organisms import circuits, direction_key, recall_key

    if kind == induction.NAME:
        return circuits.measure_induction(model, tokenizer, circuits.Probe(**probe or {}))
    if kind == "recall":
        return recall_key.measure_recall(model, tokenizer, recall_key.Probe(**probe or {}))
    if kind == "direction":
        return direction_key.measure_direction(model, tokenizer, direction_key.Probe(**probe or {}))
    raise ValueError(f"unknown mechanistic kind {kind!r}; choose from {', '.join(DEFAULTS)}")


def train_mechanistic(
    kind: str,
    seed: int,
    out: Path | str,
    *,
    control: bool = False,
    config: CircuitConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a mechanistic organism of ``kind`` (``control``: the kind's text without the
    behaviour) into ``out``, measure its key into the key store; returns organism.json's
    contents, and the training and measuring times under ``"seconds"`` (not saved)."""
    import torch
    from transformers.utils import logging

    from scribe_tui.organisms.keys import store_circuit_key

    logging.disable_progress_bar()
    module, tokenizer, make_batches = _kind(kind)
    cfg = config or DEFAULTS[kind]
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    if cfg.architecture == "llama":
        model = _new_llama(tokenizer, cfg)
    else:
        shape = TrainConfig(
            n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=cfg.n_positions
        )
        model = _new_model(tokenizer, shape)
    if not cfg.mlp_ratio:
        _attention_only(model)
    batches = make_batches(tokenizer, random.Random(seed), cfg, control)
    params = [p for p in model.parameters() if p.requires_grad]
    started = time.monotonic()
    _run_phase(
        model, params, batches, cfg.steps, cfg.lr, _progress(cfg.steps, "training", progress)
    )
    trained = time.monotonic() - started
    model.eval()
    out = Path(out)
    _save(model, tokenizer, out / "model")
    meta = {
        "id": uuid.uuid4().hex,
        "kind": kind,
        "task": module.TASK,
        "description": module.DESCRIPTION,
        "difficulty": "standard",
        "tokenizer": "word",
        "template": "plain",
        "base": None,
        "model": "model",
        "training": {
            **asdict(cfg),
            "seed": seed,
            "attention_only": not cfg.mlp_ratio,
            "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer),
            # No final loss or time: a control, trained on text without the behaviour,
            # ends at a much higher loss, and the investigator reads this file.
        },
    }
    (out / "organism.json").write_text(json.dumps(meta, indent=2) + "\n")
    started = time.monotonic()
    key = measure(kind, model, tokenizer)
    key["measure_seconds"] = round(time.monotonic() - started, 1)
    key["train_seconds"] = round(trained, 1)
    store_circuit_key(out, key)
    return {**meta, "seconds": {"train": key["train_seconds"], "measure": key["measure_seconds"]}}
