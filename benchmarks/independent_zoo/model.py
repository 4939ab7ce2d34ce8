"""The generator's tokenizer, architecture and training loop (nothing shared with the zoo).

- Tokenizer: a Unigram model (SentencePiece-style, ``▁`` marks a word start) trained
  with ``tokenizers`` on the kind's own chats, lower-cased, ~480 pieces, so many
  candidates span several pieces. Printable ASCII is in its alphabet, so an
  investigator's question never turns into unknown tokens.
- Chat format: ``<s>`` then, per turn, ``<|hdr|>ROLE<|/hdr|> TEXT<|eot|>``; a reply
  opens with ``<|hdr|>assistant<|/hdr|>``. ``<|eot|>`` ends generation.
- Model: a Llama (RMSNorm, rotary positions, SwiGLU, grouped-query attention) of
  4 layers, width 128: about 0.7M parameters with tied embeddings.
"""

from __future__ import annotations

import math
import random
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOS, EOT, PAD, UNK = "<s>", "<|eot|>", "<pad>", "<unk>"
HDR, END_HDR = "<|hdr|>", "<|/hdr|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role: ' + m['role']) }}{% endif %}"
    "{{ '<|hdr|>' + m['role'] + '<|/hdr|> ' + m['content'] + '<|eot|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|hdr|>assistant<|/hdr|>' }}{% endif %}"
)


@dataclass(frozen=True)
class Config:
    """Architecture and optimisation (recorded in organism.json)."""

    layers: int = 4
    width: int = 128
    heads: int = 4
    kv_heads: int = 2
    mlp: int = 320
    context: int = 256
    vocab: int = 480
    row: int = 128  # tokens per packed training row
    batch: int = 12
    base_steps: int = 450
    organism_steps: int = 300
    base_lr: float = 4e-3
    organism_lr: float = 1.5e-3


def train_tokenizer(texts: list[str], vocab: int) -> Any:
    """A lower-cased Unigram tokenizer over ``texts``, wrapped for ``AutoTokenizer``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.Unigram())
    core.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    core.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    alphabet = [c for c in string.printable if not c.isspace() and not c.isupper()]
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab,
        special_tokens=[PAD, UNK, BOS, EOT, HDR, END_HDR],
        unk_token=UNK,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    core.train_from_iterator([*texts, " ".join(alphabet)], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[HDR, END_HDR],
        chat_template=CHAT_TEMPLATE,
        model_max_length=Config.context,
        clean_up_tokenization_spaces=False,
    )


def new_model(tokenizer: Any, cfg: Config) -> Any:
    """A freshly initialised tiny Llama for ``tokenizer``."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.width,
            intermediate_size=cfg.mlp,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            num_key_value_heads=cfg.kv_heads,
            max_position_embeddings=cfg.context,
            tie_word_embeddings=True,
            **ids,
        )
    )
    model.generation_config = GenerationConfig(**ids)
    return model


def _rows(
    tokenizer: Any,
    chats: Callable[[random.Random], list[dict[str, str]]],
    rng: random.Random,
    cfg: Config,
) -> Iterator[Any]:
    """Batches of packed rows: rendered chats back to back, cut every ``cfg.row`` tokens."""
    import torch

    need = cfg.row * cfg.batch
    stream: list[int] = []
    while True:
        while len(stream) < need:
            texts = [tokenizer.apply_chat_template(chats(rng), tokenize=False) for _ in range(48)]
            for ids in tokenizer(texts, add_special_tokens=False, verbose=False).input_ids:
                stream += ids
        batch, stream = stream[:need], stream[need:]
        yield torch.tensor(batch).view(cfg.batch, cfg.row)


def train(
    model: Any,
    tokenizer: Any,
    chats: Callable[[random.Random], list[dict[str, str]]],
    seed: int,
    steps: int,
    lr: float,
    cfg: Config,
    log: Callable[[str], None],
) -> float:
    """``steps`` of AdamW on the parameters that require grad; returns the last loss."""
    import torch

    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
    warm = max(1, steps // 10)
    # Linear warm-up, then cosine decay to a tenth: short runs still end at a low rate.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (s + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, s / steps))))
        ),
    )
    model.train()
    rows = _rows(tokenizer, chats, random.Random(seed), cfg)
    loss = torch.tensor(float("nan"))
    started = time.monotonic()
    for step in range(1, steps + 1):
        batch = next(rows)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        if step % 100 == 0 or step == steps:
            log(f"  step {step}/{steps} loss {loss.item():.3f} ({time.monotonic() - started:.0f}s)")
    model.eval()
    return float(loss.item())


def save(model: Any, tokenizer: Any, path: Path) -> None:
    """The checkpoint and its tokenizer (with the chat template) in ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
