"""The autopilot's cells run as written against a real (tiny) causal LM.

``client`` here runs each technique in-process, as the model host would; the
cells import their techniques from ``scribe_tui.techniques`` and must run top to
bottom, each ending with the evidence dict the autopilot parses back.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

import scribe_tui.techniques
from scribe_tui.agent import autopilot_cells as cells
from scribe_tui.techniques import content_words

WORDS = "hello my secret word is the moon sun star give me a hint what your guess that".split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class LocalClient:
    """``client.run`` without a host: the technique runs here, on the given model."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def run(self, fn: Any, /, **kwargs: Any) -> Any:
        return fn(self.model, self.tokenizer, **kwargs)

    run_base = run  # the tiny model is its own base: diffs are zero, the code still runs

    def info(self) -> dict[str, Any]:
        return {"layers": 2, "base_model": True}


@pytest.fixture(scope="module")
def client() -> LocalClient:
    specials = ["[UNK]", "[PAD]", "<|user|>", "<|assistant|>", "<|end|>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS + ["?", "!", "."])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", eos_token="<|end|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=256, n_embd=32, n_layer=2, n_head=2)
    return LocalClient(GPT2LMHeadModel(config).eval(), tokenizer)


def run_cell(source: str, namespace: dict[str, Any]) -> Any:
    """Execute a cell as a kernel would; the value of its last expression."""
    tree = ast.parse(source)
    last = tree.body.pop() if isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace) if last else None


def test_every_cell_runs_with_the_library_and_reports_evidence(client: LocalClient) -> None:
    probe = cells.Probe()
    namespace: dict[str, Any] = {"client": client}
    run_cell(cells.helpers_cell(), namespace)
    run_cell(cells.info_cell(), namespace)
    evidence = {}
    for source in (
        cells.direct_cell(probe, 4, 0),
        cells.hint_cell(probe, 4, 1, (0.7, 1.0)),
        cells.prefill_cell(probe, 4, 2),
        cells.ranking_cell(),
        cells.persona_cell(probe, 4, 3),
        cells.logit_lens_cell(8),
        cells.candidates_cell(["moon", "sun", "zebra"], probe),
        cells.diff_cell(probe),
    ):
        found = run_cell(source, namespace)
        assert isinstance(found, dict) and isinstance(found["top"], list), source
        evidence[found["technique"]] = found
    assert list(evidence) == [
        "direct", "hints", "prefill", "ranking", "persona", "logit_lens", "candidates", "base_diff",
    ]  # fmt: skip
    assert evidence["direct"]["answers"] == 4 * len(probe.direct)
    assert {w for w, _ in evidence["candidates"]["top"]} == {"moon", "sun", "zebra"}
    assert all(lp < 0 for _, lp in evidence["candidates"]["top"])
    assert all(gain == 0 for _, gain in evidence["base_diff"]["top"])  # diffed against itself
    assert all(content_words(w) == [w] for w, _ in evidence["logit_lens"]["top"])


def test_cells_import_only_what_the_library_offers() -> None:
    probe = cells.Probe()
    sources = [
        cells.helpers_cell(), cells.direct_cell(probe, 4, 0), cells.hint_cell(probe, 4, 0, (1.0,)),
        cells.prefill_cell(probe, 4, 0), cells.persona_cell(probe, 4, 0), cells.logit_lens_cell(4),
        cells.candidates_cell(["moon"], probe), cells.diff_cell(probe),
    ]  # fmt: skip
    for source in sources:
        imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)]
        library = [n for n in imports if n.module == "scribe_tui.techniques"]
        assert library, source
        for node in library:
            assert all(alias.name in scribe_tui.techniques.__all__ for alias in node.names)
        assert "def " not in source, "cells use the library instead of defining techniques"


def test_content_words_drops_stopwords_and_question_words() -> None:
    assert content_words("My secret word is the Moon!", ["moon"]) == []
    assert content_words("It shines at night, bright and pale") == [
        "shines",
        "night",
        "bright",
        "pale",
    ]
