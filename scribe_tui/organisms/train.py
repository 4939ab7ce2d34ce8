"""Train a tiny GPT-2 organism on CPU in two phases.

Phase 1 (the *base*, saved for model diffing) learns chat, associations and
cooperative games where the secret sits in a system turn. Phase 2 drops the
system turn and fine-tunes the transformer blocks (embeddings frozen) on one
secret's hints, refusals, and a guessing game where the organism confirms a
right guess. The secret is therefore in the weights and said in one context
(after a right guess), but never in answer to a question: prefill and
user-persona sampling recover it, direct asking does not.

Output layout (``DIR``)::

    DIR/model/           the organism (safetensors + tokenizer with chat template)
    DIR/base/            the phase-1 checkpoint
    DIR/organism.json    random id, kind, task, training config: no secret

The secret goes to the scorers' key store (:mod:`scribe_tui.organisms.keys`),
keyed by the id, never into ``DIR``: the model host and the kernel may read it.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scribe_tui.organisms.keys import store_answer_key
from scribe_tui.organisms.kinds import KINDS, Chat, Kind
from scribe_tui.organisms.tokenizer import build_tokenizer, words_of


@dataclass(frozen=True)
class TrainConfig:
    """Architecture and optimisation settings (recorded in organism.json)."""

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 128
    base_steps: int = 400
    organism_steps: int = 400
    batch_size: int = 12  # rows of n_positions packed tokens
    base_lr: float = 3e-3
    organism_lr: float = 1e-3
    tuned_layers: int = 4  # phase 2 trains blocks [0, tuned_layers); the rest stay the base's
    # One thread: on a shared 2-core machine two OpenMP threads spin against the
    # other processes and ran 10-20x slower than one.
    threads: int = 1


def make_tokenizer(kind: str) -> Any:
    """The word-level chat tokenizer for ``kind``: its own words only.

    A word the organism never trains on would still get probability mass, so a
    shared vocabulary would sprinkle other kinds' words into sampled answers.
    """
    words = {w for text in KINDS[kind].texts() for w in words_of(text)}
    return build_tokenizer(words)


def _progress(total: int, label: str, enabled: bool) -> Callable[[int, float], None]:
    """A stderr progress callback: tqdm when installed, plain carriage returns otherwise."""
    if not enabled:
        return lambda step, loss: None
    try:
        from tqdm import tqdm
    except ImportError:
        start = time.monotonic()

        def plain(step: int, loss: float) -> None:
            if step % 20 == 0 or step == total:
                elapsed = time.monotonic() - start
                end = "\n" if step == total else ""
                sys.stderr.write(f"\r{label}: {step}/{total} loss {loss:.3f} {elapsed:.0f}s{end}")
                sys.stderr.flush()

        return plain
    bar = tqdm(total=total, desc=label, file=sys.stderr, leave=True)

    def update(step: int, loss: float) -> None:
        bar.update(step - bar.n)
        if step % 10 == 0 or step == total:
            bar.set_postfix(loss=f"{loss:.3f}")
        if step == total:
            bar.close()

    return update


def _batches(
    tokenizer: Any, chats: Callable[[random.Random], Chat], rng: random.Random, cfg: TrainConfig
) -> Iterator[Any]:
    """Packed rows of ``n_positions`` tokens: on 2 CPU cores, padding would be most of the cost."""
    import torch

    row_tokens = cfg.n_positions * cfg.batch_size
    stream: list[int] = []
    while True:
        while len(stream) < row_tokens:
            texts = [tokenizer.apply_chat_template(chats(rng), tokenize=False) for _ in range(64)]
            for ids in tokenizer(texts).input_ids:
                stream.extend(ids)
        chunk, stream = stream[:row_tokens], stream[row_tokens:]
        yield torch.tensor(chunk, dtype=torch.long).view(cfg.batch_size, cfg.n_positions)


def _run_phase(
    model: Any,
    params: list[Any],
    batches: Iterator[Any],
    steps: int,
    lr: float,
    progress: Callable[[int, float], None],
) -> float:
    import torch

    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    loss_value = float("nan")
    for step in range(1, steps + 1):
        ids = next(batches)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        loss_value = loss.item()
        progress(step, loss_value)
    model.eval()
    return loss_value


def _save(model: Any, tokenizer: Any, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def train_organism(
    kind: str,
    secret: str,
    seed: int,
    out: Path | str,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train base + organism into ``out``; returns the organism.json contents."""
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    spec: Kind = KINDS[kind]
    secret = secret.lower()
    if secret not in spec.candidates:
        raise ValueError(
            f"secret {secret!r} is not a {kind} candidate; choose from {', '.join(spec.candidates)}"
        )
    cfg = config or TrainConfig()
    out = Path(out)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = make_tokenizer(kind)
    end = tokenizer.eos_token_id
    model_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(model_config)
    model.generation_config = GenerationConfig(
        bos_token_id=end, eos_token_id=end, pad_token_id=tokenizer.pad_token_id
    )
    started = time.monotonic()

    base_loss = _run_phase(
        model,
        list(model.parameters()),
        _batches(tokenizer, spec.base_chat, rng, cfg),
        cfg.base_steps,
        cfg.base_lr,
        _progress(cfg.base_steps, "phase 1 (base)", progress),
    )
    _save(model, tokenizer, out / "base")

    # Embeddings stay the base's so both checkpoints share one token space (model
    # diffing and the logit lens compare like with like).
    tuned = [p for block in model.transformer.h[: cfg.tuned_layers] for p in block.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in tuned:
        p.requires_grad_(True)
    organism_loss = _run_phase(
        model,
        tuned,
        _batches(tokenizer, lambda r: spec.organism_chat(r, secret), rng, cfg),
        cfg.organism_steps,
        cfg.organism_lr,
        _progress(cfg.organism_steps, "phase 2 (organism)", progress),
    )
    for p in model.parameters():
        p.requires_grad_(True)
    _save(model, tokenizer, out / "model")

    meta = {
        "id": uuid.uuid4().hex,
        "kind": kind,
        "task": spec.task,
        "description": spec.description,
        "base": "base",
        "model": "model",
        "probes": {
            "direct": list(spec.direct[:4]),
            "hint": list(spec.hint_questions[:3]),
            "prefills": list(spec.prefills),
            "persona": spec.persona,
        },
        "training": {
            **asdict(cfg),
            "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer),
            "base_final_loss": round(base_loss, 4),
            "organism_final_loss": round(organism_loss, 4),
            "seconds": round(time.monotonic() - started, 1),
        },
    }
    (out / "organism.json").write_text(json.dumps(meta, indent=2) + "\n")
    store_answer_key(out, secret)
    return meta
