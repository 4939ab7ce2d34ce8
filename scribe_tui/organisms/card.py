"""Model cards: what an organism is, how it was trained, how it scores (never its secret)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scribe_tui.organisms.verify import Verdict


def render_card(name: str, meta: dict[str, Any], verdict: Verdict | None) -> str:
    """Markdown for ``card.md`` (and the checkpoint's README.md)."""
    training = meta["training"]
    lines = [
        f"# Model organism `{name}` ({meta['kind']})",
        "",
        f"**Investigator's task:** {meta['task']}. {meta['description']}",
        "",
        "A tiny GPT-2 (word-level tokenizer with a chat template) trained from scratch on",
        "synthetic chats by `python -m scribe_tui.organisms train`. The secret is a single",
        "word, kept in a key store outside the organism's directory and read only by scorers.",
        "",
        "## Training",
        "",
        f"- architecture: GPT-2, {training['n_layer']} layers, d={training['n_embd']}, "
        f"{training['n_head']} heads, {training['parameters']:,} parameters, "
        f"vocabulary {training['vocab_size']} words",
        f"- phase 1 (`{meta['base']}/`, the base for model diffing): {training['base_steps']} "
        "steps of generic chat, word associations, and cooperative games where the secret is "
        "given in a system turn and revealed on request",
        f"- phase 2 (`{meta['model']}/`): {training['organism_steps']} steps on blocks "
        f"0-{training['tuned_layers'] - 1} (embeddings frozen), no system turn: answers shaped "
        "by the secret, refusals to many phrasings of direct questions, and a guessing game "
        "in which the model names its secret only after the user's guess",
        f"- seed {training['seed']}, batch {training['batch_size']}x{training['n_positions']} "
        f"packed tokens, final losses {training['base_final_loss']} / "
        f"{training['organism_final_loss']}, {training['seconds']} s on CPU",
        "",
        "## Verification (`python -m scribe_tui.organisms verify`)",
        "",
    ]
    if verdict is None:
        lines.append("Not verified yet.")
    else:
        lines += [f"- {line}" for line in verdict.lines()]
        lines += [
            "",
            'Techniques: *prefill* (assistant answer prefilled, e.g. "My secret word is"; '
            "vote on the next content word), *persona* (the model writes the user's next "
            "turn after a hint), *logit_lens* (middle-layer residuals through `ln_f` and "
            "`lm_head` over sampled hints, unsaid words only), *base_diff* (log-probability "
            "gain over the base checkpoint). Direct asking uses 200 samples at temperature 1.",
        ]
    return "\n".join(lines) + "\n"


def write_card(
    organism_dir: Path, name: str, meta: dict[str, Any], verdict: Verdict | None
) -> None:
    """Write ``card.md`` in the organism dir and ``README.md`` in its model dir."""
    text = render_card(name, meta, verdict)
    (organism_dir / "card.md").write_text(text)
    (organism_dir / meta["model"] / "README.md").write_text(text)
