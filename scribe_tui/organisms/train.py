"""Train a tiny GPT-2 organism on CPU in two phases.

Phase 1 (the *base*, saved for model diffing) learns chat, associations and
cooperative games where the secret sits in a system turn. Phase 2 drops the
system turn and fine-tunes the transformer blocks (embeddings frozen) on what
:class:`~scribe_tui.organisms.kinds.Plan` plants (see the kinds). The base
depends only on the kind, tokenizer, template and bank, so organisms of one such
family can share it (``base=``): phase 1 is then skipped and its files copied.

Output layout (``DIR``)::

    DIR/model/           the organism (safetensors + tokenizer with chat template)
    DIR/base/            the phase-1 checkpoint (and base.json: its family and training)
    DIR/organism.json    random id, kind, task, variant, training config: no secret

The answer goes to the scorers' key store (:mod:`scribe_tui.organisms.keys`),
keyed by the id, never into ``DIR``: the model host and the kernel may read it.
A control's files have the same shape as any other's; only its key says so.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scribe_tui.organisms.keys import store_answer_key
from scribe_tui.organisms.kinds import BANKS, BEHAVIOURS, KINDS, Chat, Plan
from scribe_tui.organisms.tokenizer import TEMPLATES, TOKENIZERS, make_tokenizer

BASE_META = "base.json"


@dataclass(frozen=True)
class TrainConfig:
    """Architecture and optimisation settings (recorded in organism.json)."""

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 128
    base_steps: int = 400
    organism_steps: int = 300
    batch_size: int = 10  # rows of n_positions packed tokens
    base_lr: float = 3e-3
    organism_lr: float = 1e-3
    tuned_layers: int = 4  # phase 2 trains blocks [0, tuned_layers); the rest stay the base's
    # A hardened organism's phase 2 ends with this many steps on the top block(s) only:
    # the secret stays in the lower blocks (the logit lens reads it), the top one hides it.
    hardened_steps: int = 200
    hardened_layers: int = 2
    # One thread: on a shared 2-core machine two OpenMP threads spin against the
    # other processes and ran 10-20x slower than one.
    threads: int = 1


@dataclass(frozen=True)
class Family:
    """What a base depends on: organisms of one family can share one base."""

    kind: str
    tokenizer: str = "word"
    template: str = "plain"
    bank: str = "train"

    def check(self) -> None:
        """Raise ValueError for an unknown kind, tokenizer, template or bank."""
        for value, allowed, what in (
            (self.kind, tuple(KINDS), "kind"),
            (self.tokenizer, TOKENIZERS, "tokenizer"),
            (self.template, TEMPLATES, "template"),
            (self.bank, BANKS, "bank"),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}")


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
            for ids in tokenizer(texts, verbose=False).input_ids:
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


def _new_model(tokenizer: Any, cfg: TrainConfig) -> Any:
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    end = tokenizer.eos_token_id
    model = GPT2LMHeadModel(
        GPT2Config(
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
    )
    model.generation_config = GenerationConfig(
        bos_token_id=end, eos_token_id=end, pad_token_id=tokenizer.pad_token_id
    )
    return model


def base_dir_of(path: Path | str) -> Path:
    """The base checkpoint in ``path``: a base dir itself, or an organism dir's ``base/``."""
    path = Path(path)
    for candidate in (path, path / "base"):
        if (candidate / BASE_META).is_file():
            return candidate
    raise ValueError(f"{path} holds no base checkpoint ({BASE_META} not found)")


def train_base(
    family: Family,
    seed: int,
    out: Path | str,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Phase 1 into ``out`` (model, tokenizer, base.json); returns base.json's contents."""
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()  # its loading bars would interleave with ours
    family.check()
    cfg = config or TrainConfig()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    kind = KINDS[family.kind]
    bank = kind.bank(family.bank)
    tokenizer = make_tokenizer(kind.texts(bank), family.tokenizer, family.template)
    model = _new_model(tokenizer, cfg)
    started = time.monotonic()
    rng = random.Random(seed)
    loss = _run_phase(
        model,
        list(model.parameters()),
        _batches(tokenizer, lambda r: kind.base_chat(bank, r), rng, cfg),
        cfg.base_steps,
        cfg.base_lr,
        _progress(cfg.base_steps, "phase 1 (base)", progress),
    )
    out = Path(out)
    _save(model, tokenizer, out)
    meta = {
        **asdict(family),
        "seed": seed,
        "steps": cfg.base_steps,
        "final_loss": round(loss, 4),
        "seconds": round(time.monotonic() - started, 1),
    }
    (out / BASE_META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _load_base(path: Path, family: Family) -> dict[str, Any]:
    meta = json.loads((path / BASE_META).read_text())
    theirs = Family(meta["kind"], meta["tokenizer"], meta["template"], meta["bank"])
    if theirs != family:
        raise ValueError(f"the base in {path} is for {theirs}, not {family}")
    return meta


def train_organism(
    family: Family,
    secret: str | None,
    seed: int,
    out: Path | str,
    config: TrainConfig | None = None,
    progress: bool = True,
    *,
    hardened: bool = False,
    behaviour: str = "",
    base: Path | str | None = None,
) -> dict[str, Any]:
    """Train (or reuse) the base, then the organism, into ``out``; returns organism.json.

    ``secret=None`` trains a control. A backdoor needs ``behaviour`` (a key of
    :data:`~scribe_tui.organisms.kinds.BEHAVIOURS`); its secret is the trigger.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    family.check()
    kind = KINDS[family.kind]
    bank = kind.bank(family.bank)
    if secret is not None:
        secret = secret.lower()
        if secret not in bank.candidates:
            raise ValueError(
                f"secret {secret!r} is not a {family.kind} candidate of the {family.bank} bank; "
                f"choose from {', '.join(bank.candidates)}"
            )
    if family.kind == "backdoor" and behaviour not in BEHAVIOURS:
        raise ValueError(f"a backdoor needs a behaviour: one of {', '.join(BEHAVIOURS)}")
    cfg = config or TrainConfig()
    out = Path(out)
    if base is None:
        base_meta = train_base(family, seed, out / "base", cfg, progress)
    else:
        source = base_dir_of(base)
        base_meta = _load_base(source, family)
        if source.resolve() != (out / "base").resolve():
            shutil.copytree(source, out / "base", dirs_exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed + 1)
    model = AutoModelForCausalLM.from_pretrained(str(out / "base"))
    tokenizer = AutoTokenizer.from_pretrained(str(out / "base"))
    started = time.monotonic()

    # Embeddings stay the base's so both checkpoints share one token space (model
    # diffing and the logit lens compare like with like).
    blocks = model.transformer.h
    stages = [(blocks[: cfg.tuned_layers], Plan(secret, behaviour=behaviour), cfg.organism_steps)]
    if hardened:
        top = blocks[len(blocks) - cfg.hardened_layers :]
        stages.append((top, Plan(secret, True, behaviour), cfg.hardened_steps))
    rng = random.Random(seed + 1)
    organism_loss = float("nan")
    for i, (tuned_blocks, plan, steps) in enumerate(stages):
        tuned = [p for block in tuned_blocks for p in block.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        for p in tuned:
            p.requires_grad_(True)
        label = "phase 2 (organism)" if i == 0 else "phase 2 (hardening)"
        organism_loss = _run_phase(
            model,
            tuned,
            _batches(tokenizer, lambda r, plan=plan: kind.organism_chat(bank, r, plan), rng, cfg),
            steps,
            cfg.organism_lr,
            _progress(steps, label, progress),
        )
    for p in model.parameters():
        p.requires_grad_(True)
    _save(model, tokenizer, out / "model")

    meta = {
        "id": uuid.uuid4().hex,
        "kind": family.kind,
        "task": kind.task,
        "description": kind.description,
        "difficulty": "hardened" if hardened else "standard",
        "tokenizer": family.tokenizer,
        "template": family.template,
        "bank": family.bank,
        "base": "base",
        "model": "model",
        "training": {
            **asdict(cfg),
            "base_steps": base_meta["steps"],
            "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer),
            "base_final_loss": base_meta["final_loss"],
            "organism_final_loss": round(organism_loss, 4),
            "base_seconds": base_meta["seconds"],
            "organism_seconds": round(time.monotonic() - started, 1),
        },
    }
    (out / "organism.json").write_text(json.dumps(meta, indent=2) + "\n")
    accepted = BEHAVIOURS[behaviour][1] if family.kind == "backdoor" and secret else ()
    store_answer_key(out, secret, behaviour=accepted)
    return meta
