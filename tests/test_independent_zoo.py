"""The independent organism generator (``benchmarks/independent_zoo``) builds a directory
the project accepts: loadable, templated, keyed in the key store, its secret nowhere in it.

One taboo organism with a handful of steps (seconds); its behaviour is measured by the
generator's own checks on full builds, not here.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from torch_threads import one_torch_thread  # noqa: F401 (an autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
SEED = 9001  # a development seed: excluded from the autopilot's final report


@pytest.fixture
def zoo(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The generator's command-line module, importable from the repository root."""
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.independent_zoo.build as build

    return build


def test_builds_a_loadable_keyed_organism(
    zoo: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scribe_tui.organisms.keys import answer_key_record
    from scribe_tui.organisms.registry import organism_info
    from scribe_tui.runtime.loading import resolve_model
    from scribe_tui.techniques.prompting import user_prompt

    monkeypatch.setenv("SCRIBE_KEY_DIR", str(tmp_path / "elsewhere"))  # main sets OUT/keys
    out = tmp_path / "zoo"
    args = ["--kinds", "taboo", "--seeds", str(SEED), "--out", str(out), "--no-check"]
    assert zoo.main([*args, "--base-steps", "3", "--organism-steps", "2"]) == 0
    [organism] = [p for p in out.iterdir() if (p / "organism.json").is_file()]

    model = AutoModelForCausalLM.from_pretrained(organism / "model")
    tokenizer = AutoTokenizer.from_pretrained(organism / "model")
    assert model.config.model_type == "llama"
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    chat = [{"role": "user", "content": "Give me a clue."}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert text == "<s><|hdr|>user<|/hdr|> Give me a clue.<|eot|><|hdr|>assistant<|/hdr|>"
    assert user_prompt(tokenizer, chat).endswith("<|hdr|>user<|/hdr|> ")
    assert AutoModelForCausalLM.from_pretrained(organism / "base").config.model_type == "llama"

    resolved = resolve_model(str(organism))
    assert (resolved.path, resolved.base) == (str(organism / "model"), str(organism / "base"))
    assert organism_info(str(organism)).task == "find the hidden word"

    secret = zoo.plan_for("taboo", SEED).secret
    assert secret
    meta = json.loads((organism / "organism.json").read_text())
    assert not {"secret", "control", "seed", "plan"} & {*meta, *meta["training"]}
    # (The tokenizer's vocabulary holds every candidate, so it tells nothing.)
    for name in ("organism.json", "card.md", "model/config.json", "base/base.json"):
        assert secret not in (organism / name).read_text().lower(), name

    monkeypatch.setenv("SCRIBE_KEY_DIR", str(out / "keys"))
    assert (out / "keys" / f"{meta['id']}.json").is_file()
    assert answer_key_record(organism).secret == secret
    assert not (tmp_path / "elsewhere").exists()


def test_word_list_is_disjoint_from_the_zoos(zoo: ModuleType) -> None:
    from benchmarks.independent_zoo import words

    words.assert_disjoint_from_zoo()
    assert not words.own_words() & words.zoo_words()
    assert {*words.TABOO, *words.BELIEF, *words.PREFERENCE, *words.TRIGGERS}.isdisjoint(
        words.zoo_words()
    )


def test_a_style_key_accepts_every_word_its_wrappers_add(zoo: ModuleType) -> None:
    """A right trigger was scored wrong for quoting "hark, forsooth" from the replies: the
    key must accept what the planted style says, not a sample of it."""
    from benchmarks.independent_zoo.words import STYLES
    from scribe_tui.techniques import content_words

    for name, (_, accepted, wrappers) in STYLES.items():
        said = {w for wrapper in wrappers for w in content_words(wrapper.format(x=""))}
        named = {w for phrase in accepted for w in phrase.split()}
        assert said <= named, (name, said - named)
