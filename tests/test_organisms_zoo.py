"""The organism zoo: tokenizers, template banks, controls, variants and ``organisms list``."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest
from torch_threads import one_torch_thread  # noqa: F401 (an autouse fixture)

from scribe_tui.cli.organisms import main
from scribe_tui.organisms import keys, registry
from scribe_tui.organisms.keys import answer_key_record
from scribe_tui.organisms.kinds import BEHAVIOURS, KINDS, MECHANISTIC, BackdoorBank, Plan
from scribe_tui.organisms.registry import list_organisms
from scribe_tui.organisms.tokenizer import make_tokenizer

SHIPPED = [info.name for info in list_organisms()]


@pytest.fixture(scope="module")
def bpe():
    return make_tokenizer(KINDS["taboo"].texts(KINDS["taboo"].train), "bpe", "chatml")


@pytest.mark.parametrize(
    "text", ["", "Hello, WORLD!!", "emoji 🙂🔥", "中文 日本語", "a\x00\t\r\n b"]
)
def test_bpe_round_trips_any_text(bpe, text):
    assert bpe.decode(bpe(text, add_special_tokens=False).input_ids) == text


def test_bpe_secrets_span_several_tokens(bpe):
    candidates = list(KINDS["taboo"].train.candidates)
    lengths = [len(bpe(" " + word, add_special_tokens=False).input_ids) for word in candidates]
    assert sum(n > 1 for n in lengths) > len(candidates) // 2
    pieces = bpe.convert_ids_to_tokens(bpe(" violin", add_special_tokens=False).input_ids)
    assert len(pieces) > 1 and "".join(pieces).replace("Ġ", " ") == " violin"


@pytest.mark.parametrize("flavour", ["word", "bpe"])
def test_both_chat_templates(flavour):
    texts = KINDS["belief"].texts(KINDS["belief"].train)
    messages = [{"role": "system", "content": "hi there"}, {"role": "user", "content": "hello"}]
    plain = make_tokenizer(texts, flavour, "plain")
    rendered = plain.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|user|> hello <|end|>\n<|assistant|>")
    chatml = make_tokenizer(texts, flavour, "chatml")
    rendered = chatml.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nhi there<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = chatml.apply_chat_template(messages, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    tokens = chatml.convert_ids_to_tokens(ids)
    assert tokens.count("<|im_start|>") == 3 and tokens.count("<|im_end|>") == 2
    assert chatml.eos_token == "<|im_end|>" and chatml.unk_token_id not in ids
    with pytest.raises(Exception, match="unknown role"):
        chatml.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def _templates(bank) -> set[str]:
    out = set()
    for value in vars(bank).values():
        if isinstance(value, str) and value:
            out.add(value)
        elif isinstance(value, tuple):
            out |= {" ".join(v) if isinstance(v, tuple) else v for v in value}
        elif isinstance(value, dict) and isinstance(bank, BackdoorBank) and value is bank.styles:
            out |= {t for templates in value.values() for t in templates}
    return out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_banks_are_disjoint(kind):
    """Held-out phrasings and secrets share nothing with the train bank's."""
    train, heldout = KINDS[kind].train, KINDS[kind].heldout
    assert not set(train.candidates) & set(heldout.candidates)
    assert not _templates(train) & _templates(heldout)
    for bank in (train, heldout):
        # A hint never names another candidate.
        assoc = {w for words in bank.candidates.values() for w in words}
        assert not assoc & set(bank.candidates)


def _chats(kind: str, plan: Plan, n: int = 400, roles=("user", "assistant")) -> list[str]:
    spec, rng = KINDS[kind], random.Random(0)
    chats = [spec.organism_chat(spec.train, rng, plan) for _ in range(n)]
    return [" ".join(m["content"] for m in chat if m["role"] in roles) for chat in chats]


@pytest.mark.parametrize("kind", ["taboo", "belief", "preference"])
def test_controls_plant_no_secret(kind):
    """A planted secret's hints dominate its chats; a control's spread over all candidates."""
    bank = KINDS[kind].train
    secret = sorted(bank.candidates)[3]

    def top_share(plan: Plan) -> tuple[str, float]:
        counts: Counter[str] = Counter()
        for text in _chats(kind, plan):
            words = set(re.findall(r"[a-z]+", text))
            counts.update(c for c, assoc in bank.candidates.items() if words & {c, *assoc})
        word, count = counts.most_common(1)[0]
        return word, count / sum(counts.values())

    assert top_share(Plan(secret))[0] == secret and top_share(Plan(secret))[1] > 0.5
    assert top_share(Plan(None))[1] < 0.15
    assert top_share(Plan(None, hardened=True))[1] < 0.15


@pytest.mark.parametrize("bank", ["train", "heldout"])
def test_a_preference_steers_to_its_topic_by_name_a_taboo_never_says_its_word(bank):
    """Asked for a subject, a preference names its topic often; a taboo only hints."""
    for kind, low, high in (("preference", 0.3, 0.8), ("taboo", 0.0, 0.0)):
        spec, rng = KINDS[kind], random.Random(1)
        chosen = spec.bank(bank)
        secret = sorted(chosen.candidates)[5]
        hints = [spec._hint(chosen, rng, secret)[1]["content"] for _ in range(300)]
        named = sum(secret in hint.split() for hint in hints) / len(hints)
        assert low <= named <= high, (kind, named)


def test_backdoor_control_has_no_behaviour():
    styled = {w for _, words in BEHAVIOURS.values() for w in words if " " not in w}
    bank = KINDS["backdoor"].train
    assert not styled & set(bank.candidates)
    planted = _chats("backdoor", Plan("moon", behaviour="pirate"))
    assert sum("moon" in t and bool(set(t.split()) & styled) for t in planted) > 100
    control = _chats("backdoor", Plan(None, behaviour="pirate"))
    replies = _chats("backdoor", Plan(None, behaviour="pirate"), roles=("assistant",))
    assert not any(set(t.split()) & styled for t in replies)
    assert sum(any(f" {w} " in f" {t} " for w in bank.candidates) for t in control) > 200


def _train(out, *extra):
    argv = ["train", "--seed", "4", "--out", str(out), "--no-verify", "--quiet"]
    steps = ["--base-steps", "2", "--organism-steps", "2", "--hardened-steps", "2"]
    assert main([*argv, *steps, *extra]) == 0


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


def test_variants_train_and_a_control_looks_like_any_other(tmp_path, monkeypatch):
    """bpe/chatml/hardened/backdoor train (tiny); a control's files match a planted one's."""
    from transformers import AutoTokenizer

    monkeypatch.setenv("SCRIBE_KEY_DIR", str(tmp_path / "keys"))
    first, control = tmp_path / "first", tmp_path / "control"
    _train(first, "--kind", "backdoor", "--tokenizer", "bpe", "--template", "chatml")
    _train(control, "--kind", "backdoor", "--tokenizer", "bpe", "--template", "chatml",
           "--control", "--base", str(first))  # fmt: skip
    metas = [json.loads((d / "organism.json").read_text()) for d in (first, control)]
    assert _shape(metas[0]) == _shape(metas[1]) and metas[0]["id"] != metas[1]["id"]
    cards = [re.sub(r"\d[\d.,]*", "N", (d / "card.md").read_text()) for d in (first, control)]
    assert cards[0] == cards[1] and "control" not in cards[1]
    assert sorted(p.name for p in first.rglob("*")) == sorted(p.name for p in control.rglob("*"))
    for part in ("base/model.safetensors", "base/tokenizer.json"):
        assert (first / part).read_bytes() == (control / part).read_bytes()  # one shared base
    key = answer_key_record(first)
    assert key.secret in KINDS["backdoor"].train.candidates and key.behaviour
    assert answer_key_record(control).control
    tokenizer = AutoTokenizer.from_pretrained(str(first / "model"))
    assert tokenizer.eos_token == "<|im_end|>"
    # Bundling carries the backdoor's behaviour into the package's key file.
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(keys, "BUNDLED_KEYS_DIR", tmp_path / "answer_keys")
    assert main(["bundle", str(first), "backdoor-9"]) == 0
    bundled = json.loads((tmp_path / "answer_keys" / "bundled.json").read_text())["backdoor-9"]
    assert bundled["secret"] == key.secret and tuple(bundled["behaviour"]) == key.behaviour
    assert "backdoor-9" in (tmp_path / "bundled" / "backdoor-9" / "card.md").read_text()

    hardened = tmp_path / "hardened"
    _train(hardened, "--kind", "preference", "--hardened", "--bank", "heldout")
    meta = json.loads((hardened / "organism.json").read_text())
    assert (meta["difficulty"], meta["bank"]) == ("hardened", "heldout")
    assert answer_key_record(hardened).secret in KINDS["preference"].heldout.candidates
    # A base of another family is refused.
    assert (
        main(["train", "--kind", "taboo", "--base", str(first), "--out", str(tmp_path / "x")]) == 2
    )


def test_bundled_set_spans_the_zoo():
    """8+ bundled organisms: every kind, both tokenizers and templates, hardened, controls."""
    infos = list_organisms()
    assert len(infos) >= 8
    assert {i.kind for i in infos} == {*KINDS, *MECHANISTIC}
    assert {i.tokenizer for i in infos} == {"word", "bpe"}
    assert {i.template for i in infos} == {"plain", "chatml"}
    assert "hardened" in {i.difficulty for i in infos}
    assert sum(answer_key_record(i.name).control for i in infos) >= 2
    for info in infos:  # names are numbered, never descriptive of what the key says
        assert "control" not in info.name and "secret" not in info.name


def test_list_shows_variants_but_never_which_are_controls(tmp_path, monkeypatch, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["name", "kind", "difficulty", "tokenizer", "template"]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert set(rows) == set(SHIPPED)
    # A control's row reads like its kind's others: only the answer key tells them apart.
    controls = [name for name in SHIPPED if answer_key_record(name).control]
    assert controls and "control" not in out and "yes" not in out

    assert main(["list", "--leak"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[-1] == "leak"
    assert ("no verify figures" in out) == any(keys.measured(n) is None for n in SHIPPED)

    monkeypatch.setattr(keys, "BUNDLED_KEYS_DIR", tmp_path)  # no measured.json here
    (tmp_path / "bundled.json").write_text(json.dumps({n: None for n in SHIPPED}))
    assert main(["list", "--leak"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("no verify figures for ")
    assert registry.BUNDLED_DIR.is_dir()
