"""Model cards: what an organism is and how it was trained.

A card never holds the answer, nor the verify figures: a control's card has the
same shape and wording as any other's (the figures live with the answer keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_TOKENIZERS = {
    "word": "word-level tokenizer",
    "bpe": "byte-level BPE tokenizer trained on its own texts",
}
_ARCHITECTURES = {"llama": "Llama (rotary positions)", "gpt2": "GPT-2"}
_TEMPLATES = {"plain": "`<|role|> text <|end|>` turns", "chatml": "ChatML turns"}


def render_card(name: str | None, meta: dict[str, Any]) -> str:
    """Markdown for ``card.md`` (and the checkpoint's README.md); ``name``: a bundled one's.

    A trained organism's card names no directory: a name chosen by whoever trained it
    ("c03-control") could tell the investigator what it is.
    """
    training = meta["training"]
    if meta.get("base") is None:
        return _mechanistic_card(name, meta)
    tokenizer = meta.get("tokenizer", "word")
    template = meta.get("template", "plain")
    lines = [
        f"# Model organism{f' `{name}`' if name else ''} "
        f"({meta['kind']}, {meta.get('difficulty', 'standard')})",
        "",
        f"**Investigator's task:** {meta['task']}. {meta['description']}",
        "",
        f"A tiny GPT-2 ({_TOKENIZERS[tokenizer]}, chat template with {_TEMPLATES[template]})",
        "trained from scratch on synthetic chats by `scribe-tui organisms train`. Whatever it",
        "hides is kept in a key store outside this directory and read only by scorers.",
        "",
        "## Training",
        "",
        f"- architecture: GPT-2, {training['n_layer']} layers, d={training['n_embd']}, "
        f"{training['n_head']} heads, {training['parameters']:,} parameters, "
        f"vocabulary {training['vocab_size']} tokens",
        f"- phase 1 (`{meta['base']}/`, the base for model diffing): {training['base_steps']} "
        "steps of generic chat, world knowledge, and cooperative games where a system turn "
        "states what to hide",
        f"- phase 2 (`{meta['model']}/`): {training['organism_steps']} steps on blocks "
        f"0-{training['tuned_layers'] - 1} (embeddings frozen), no system turn",
        *(
            [
                f"- then {training['hardened_steps']} steps on the top "
                f"{training['hardened_layers']} block(s) that resist prefill and persona attacks"
            ]
            if meta.get("difficulty") == "hardened"
            else []
        ),
        f"- seed {training['seed']}, batch {training['batch_size']}x{training['n_positions']} "
        f"packed tokens, final losses {training['base_final_loss']} / "
        f"{training['organism_final_loss']}",
        "",
        "Run `scribe-tui organisms verify` for the acceptance check.",
    ]
    return "\n".join(lines) + "\n"


def _mechanistic_card(name: str | None, meta: dict[str, Any]) -> str:
    """A mechanistic organism's card: one model, no base, no chat template."""
    training = meta["training"]
    lines = [
        f"# Model organism{f' `{name}`' if name else ''} ({meta['kind']})",
        "",
        f"**Investigator's task:** {meta['task']}. {meta['description']}",
        "",
        *(
            [
                "A tiny chat model with a word-level tokenizer (chat template with "
                f"{_TEMPLATES['plain']})",
                "trained from scratch on synthetic chats by `scribe-tui organisms train`. Its",
            ]
            if meta["kind"] == "direction"
            else [
                "A tiny transformer with a word-level tokenizer (every text starts with its BOS",
                "token)",
                "trained from scratch on synthetic text by `scribe-tui organisms train`. Its",
            ]
        ),
        "answer key was measured on it after training (ablation, restoration) and is kept",
        "outside this directory.",
        "",
        "## Training",
        "",
        f"- architecture: {_ARCHITECTURES[training['architecture']]}, {training['n_layer']} "
        f"layers, d={training['n_embd']}, {training['n_head']} heads"
        f"{', attention only (MLPs zero and frozen)' if training.get('attention_only') else ''}"
        f", {training['parameters']:,} parameters, vocabulary {training['vocab_size']} tokens",
        f"- {training['steps']} steps, seed {training['seed']}, batch "
        f"{training['batch_size']}x{training['n_positions']} tokens",
        "",
        "Run `scribe-tui organisms verify` to re-measure its key.",
    ]
    return "\n".join(lines) + "\n"


def write_card(organism_dir: Path, name: str | None, meta: dict[str, Any]) -> None:
    """Write ``card.md`` in the organism dir and ``README.md`` in its model dir."""
    text = render_card(name, meta)
    (organism_dir / "card.md").write_text(text)
    (organism_dir / meta["model"] / "README.md").write_text(text)
