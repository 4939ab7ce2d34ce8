"""Tested interpretability techniques, each a plain ``fn(model, tokenizer, **kwargs)``.

Run them in the notebook with ``client.run(fn, **kwargs)`` (or ``client.run_base``
on the checkpoint before fine-tuning); they return plain data of bounded size,
remove every hook they add, and work across GPT-2, Llama, Gemma 2, Qwen2, Mistral
and GPT-NeoX. Importing this package is cheap: each function imports torch in its
body, and cloudpickle ships the functions by reference, so the host imports them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from scribe_tui.techniques.ablation import ablate_components, ablation_scan
from scribe_tui.techniques.activations import (
    attention_patterns,
    capture_activations,
    contrastive_direction,
)
from scribe_tui.techniques.attribution import attribution_patching, direct_logit_attribution
from scribe_tui.techniques.components import Component, format_components, parse_component
from scribe_tui.techniques.diffing import diff_activations, diff_next_token
from scribe_tui.techniques.fit import phrase_fit
from scribe_tui.techniques.heads import head_scores, pattern_scores
from scribe_tui.techniques.info import get_model_info
from scribe_tui.techniques.interventions import activation_patching, steer
from scribe_tui.techniques.lens import lens_votes, logit_lens
from scribe_tui.techniques.locate import Anatomy, anatomy, decode_residual, find_module
from scribe_tui.techniques.probs import (
    analyze_token_probs,
    next_token_logprobs,
    next_token_probs,
    response_logprobs,
    word_probs,
)
from scribe_tui.techniques.saes import sae_encode, sae_features, sae_stability, train_sae
from scribe_tui.techniques.sampling import (
    generate_text,
    persona_sample,
    prefill_attack,
    reply_sample,
    sample_chat,
)
from scribe_tui.techniques.text import (
    STOPWORDS,
    content_words,
    continuation_words,
    distinctive_words,
    fisher_greater,
    share_saying,
)
from scribe_tui.techniques.tracing import causal_tracing, path_patching
from scribe_tui.techniques.words import (
    lens_words,
    trigger_scan,
    vocabulary_words,
    word_continuations,
)

# What the agent is shown, in this order: run with client.run(fn, ...).
TECHNIQUES: tuple[Callable[..., Any], ...] = (
    get_model_info,
    generate_text,
    prefill_attack,
    sample_chat,
    reply_sample,
    persona_sample,
    analyze_token_probs,
    next_token_probs,
    word_probs,
    word_continuations,
    phrase_fit,
    next_token_logprobs,
    response_logprobs,
    logit_lens,
    lens_votes,
    lens_words,
    capture_activations,
    attention_patterns,
    contrastive_direction,
    activation_patching,
    steer,
    diff_next_token,
    diff_activations,
    trigger_scan,
    vocabulary_words,
)
# Causal techniques on heads and MLPs, named "L1H3" and "mlp2" (shown after the above).
CAUSAL_TECHNIQUES: tuple[Callable[..., Any], ...] = (
    head_scores,
    direct_logit_attribution,
    attribution_patching,
    ablate_components,
    ablation_scan,
    path_patching,
    causal_tracing,
    train_sae,
    sae_encode,
)
# Helpers for writing techniques of one's own (inside a function run by client.run),
# and for reading samples in the notebook.
HELPERS: tuple[Callable[..., Any], ...] = (
    anatomy,
    decode_residual,
    find_module,
    content_words,
    continuation_words,
    distinctive_words,
    fisher_greater,
    pattern_scores,
    sae_features,
    sae_stability,
)


def signature(fn: Callable[..., Any], *, technique: bool = True) -> str:
    """``name(arg=default, ...)``; for a technique, without the ``model, tokenizer`` it takes."""
    params = [
        p.replace(annotation=p.empty)
        for p in inspect.signature(fn).parameters.values()
        if not (technique and p.name in ("model", "tokenizer"))
    ]
    return f"{fn.__name__}({', '.join(map(str, params))})"


def summary(fn: Callable[..., Any]) -> str:
    """The first sentence of a docstring, on one line, in plain markdown."""
    paragraph = " ".join((inspect.getdoc(fn) or "").split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.?!])\s", paragraph)[0]
    sentence = re.sub(r":\w+:`~?([\w.]+)`", r"`\1`", sentence).replace("``", "`")
    return sentence if sentence.endswith((".", "?", "!")) else sentence + "."


def describe() -> str:
    """The library as the agent sees it: one line per function, signature and summary."""
    lines = [
        "Technique library, tested on GPT-2, Llama, Gemma 2, Qwen2, Mistral and GPT-NeoX: "
        "`from scribe_tui.techniques import logit_lens`, then "
        "`client.run(logit_lens, prompt=...)` (`client.run_base` for the base model).",
        *(f"- {signature(fn)}: {summary(fn)}" for fn in TECHNIQUES),
        "Causal techniques on components, named 'L1H3' (layer 1, head 3) and 'mlp2':",
        *(f"- {signature(fn)}: {summary(fn)}" for fn in CAUSAL_TECHNIQUES),
        "Helpers, for your own fn(model, tokenizer) and for reading samples:",
        *(f"- {signature(fn, technique=False)}: {summary(fn)}" for fn in HELPERS),
    ]
    return "\n".join(lines)


__all__ = [
    "CAUSAL_TECHNIQUES",
    "HELPERS",
    "STOPWORDS",
    "TECHNIQUES",
    "Anatomy",
    "Component",
    "ablate_components",
    "ablation_scan",
    "activation_patching",
    "analyze_token_probs",
    "anatomy",
    "attention_patterns",
    "attribution_patching",
    "capture_activations",
    "causal_tracing",
    "content_words",
    "continuation_words",
    "contrastive_direction",
    "decode_residual",
    "describe",
    "diff_activations",
    "diff_next_token",
    "direct_logit_attribution",
    "distinctive_words",
    "find_module",
    "fisher_greater",
    "format_components",
    "generate_text",
    "get_model_info",
    "head_scores",
    "lens_votes",
    "lens_words",
    "logit_lens",
    "next_token_logprobs",
    "next_token_probs",
    "parse_component",
    "path_patching",
    "pattern_scores",
    "persona_sample",
    "phrase_fit",
    "prefill_attack",
    "reply_sample",
    "response_logprobs",
    "sae_encode",
    "sae_features",
    "sae_stability",
    "sample_chat",
    "share_saying",
    "steer",
    "train_sae",
    "trigger_scan",
    "vocabulary_words",
    "word_continuations",
    "word_probs",
]
