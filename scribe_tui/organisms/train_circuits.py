"""Train a mechanistic organism on CPU, then measure its answer key.

Only ``induction`` for now (:mod:`scribe_tui.organisms.kinds.induction`). Output
layout (``DIR``)::

    DIR/model/           the organism (safetensors + tokenizer)
    DIR/organism.json    random id, kind, task, training config: no key, no control flag

The key is measured on the trained model by :func:`scribe_tui.organisms.circuits.
measure_induction` and written to the key store (:mod:`scribe_tui.organisms.keys`),
never into ``DIR``. A control's files have the same shape as any other's.
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
            intermediate_size=cfg.n_embd,  # zero and frozen: see _attention_only
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
    """Train an induction organism (``control``: no repeated spans) into ``out``, measure
    its key into the key store; returns organism.json's contents."""
    import torch
    from transformers.utils import logging

    from scribe_tui.organisms.circuits import measure_induction
    from scribe_tui.organisms.keys import store_circuit_key

    logging.disable_progress_bar()
    cfg = config or CircuitConfig()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    tokenizer = induction.make_tokenizer()
    if cfg.architecture == "llama":
        model = _new_llama(tokenizer, cfg)
    else:
        shape = TrainConfig(
            n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=cfg.n_positions
        )
        model = _new_model(tokenizer, shape)
    _attention_only(model)
    batches = _batches(tokenizer, induction.Language.make(), random.Random(seed), cfg, not control)
    params = [p for p in model.parameters() if p.requires_grad]
    _run_phase(
        model, params, batches, cfg.steps, cfg.lr, _progress(cfg.steps, "training", progress)
    )
    out = Path(out)
    _save(model, tokenizer, out / "model")
    meta = {
        "id": uuid.uuid4().hex,
        "kind": induction.NAME,
        "task": induction.TASK,
        "description": induction.DESCRIPTION,
        "difficulty": "standard",
        "tokenizer": "word",
        "template": "plain",
        "base": None,
        "model": "model",
        "training": {
            **asdict(cfg),
            "seed": seed,
            "attention_only": True,
            "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer),
            # No final loss or time: a control, trained on text without repeats, ends at
            # a much higher loss, and the investigator reads this file.
        },
    }
    (out / "organism.json").write_text(json.dumps(meta, indent=2) + "\n")
    started = time.monotonic()
    key = measure_induction(model, tokenizer)
    key["measure_seconds"] = round(time.monotonic() - started, 1)
    store_circuit_key(out, key)
    return meta
