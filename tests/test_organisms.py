"""Model organisms: tokenizer, registry, trainer, and the acceptance check on shipped ones."""

from __future__ import annotations

import json
import stat

import pytest
from torch_threads import one_torch_thread  # noqa: F401 (an autouse fixture)

from scribe_tui.cli.organisms import main
from scribe_tui.organisms import answer_key, keys, registry
from scribe_tui.organisms.keys import answer_key_record
from scribe_tui.organisms.kinds import KINDS
from scribe_tui.organisms.registry import (
    UnknownOrganism,
    list_organisms,
    organism_info,
    resolve_model_spec,
)

SHIPPED = [info.name for info in list_organisms()]
# Organisms with a planted secret (mechanistic ones: tests/test_mechanistic.py).
SECRET_KEEPING = [info.name for info in list_organisms() if info.kind in KINDS]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    model_dir, _ = resolve_model_spec("organism:taboo")
    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello, WORLD!!",
        "emoji 🙂🔥 here",
        "中文字符 和 日本語",
        "ctrl \x00\x07\x1b[0m\t\r\n",
        "x" * 5000,
    ],
)
def test_tokenizer_accepts_any_text(tokenizer, text):
    ids = tokenizer(text).input_ids
    assert all(0 <= i < len(tokenizer) for i in ids)
    assert isinstance(tokenizer.decode(ids), str)


def test_tokenizer_unknown_words_become_unk(tokenizer):
    ids = tokenizer("🙂 zyzzyva 你好").input_ids
    assert ids == [tokenizer.unk_token_id] * 3


def test_chat_template(tokenizer):
    messages = [{"role": "system", "content": "Give hints."}, {"role": "user", "content": "Hello?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<|system|> Give hints. <|end|>\n<|user|> Hello? <|end|>\n<|assistant|>"
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "<|system|>" and tokens[-1] == "<|assistant|>"
    assert tokens.count("<|end|>") == 2 and "[UNK]" not in tokens
    assert tokenizer.eos_token == "<|end|>"
    with pytest.raises(Exception, match="unknown role"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_at_least_two_kinds_shipped():
    kinds = {info.kind for info in list_organisms()}
    assert "taboo" in SHIPPED and len(kinds) >= 2


@pytest.mark.parametrize("name", SECRET_KEEPING)
def test_shipped_layout_hides_the_secret(name):
    info = organism_info(name)
    key = answer_key_record(name)
    meta = json.loads((info.path / "organism.json").read_text())
    assert "probes" not in meta and "control" not in json.dumps(meta).lower()
    assert {"id", "difficulty", "tokenizer", "template", "bank"} <= meta.keys()
    bank = KINDS[info.kind].bank(meta["bank"])
    assert key.control or (len(key.secret.split()) == 1 and key.secret in bank.candidates)
    assert not (info.path / "answer_key.json").exists()
    secrets = [key.secret, *key.behaviour] if key.secret else []
    for path in info.path.rglob("*"):
        assert not any(secret in path.name for secret in secrets)
    for text_file in ("organism.json", "card.md", "model/README.md", "model/config.json"):
        text = (info.path / text_file).read_text().lower()
        assert "control" not in text and not any(f" {s} " in f" {text} " for s in secrets)
    model_dir, base_dir = resolve_model_spec(f"organism:{name}")
    assert model_dir == info.path / "model" and base_dir == info.path / "base"
    size = sum(p.stat().st_size for p in info.path.rglob("*") if p.is_file())
    assert size < 10_000_000
    assert answer_key_record(info.path) == key  # a bundled directory is keyed by its name


def test_bundled_keys_sit_outside_the_organisms_tree():
    """The sandbox excludes ``organisms/bundled`` and ``BUNDLED_KEYS_DIR`` as two subtrees."""
    organisms_dir = registry.PACKAGE_DIR
    assert organisms_dir not in keys.BUNDLED_KEYS_DIR.parents
    assert registry.BUNDLED_DIR not in keys.BUNDLED_KEYS_DIR.parents
    assert (keys.BUNDLED_KEYS_DIR / "bundled.json").is_file()
    assert not [p for p in organisms_dir.rglob("*.json") if "answer_key" in p.name]


@pytest.mark.slow
@pytest.mark.parametrize("name", SECRET_KEEPING)
def test_acceptance(name, capsys, monkeypatch, tmp_path):
    """Each bundled organism passes its own kind's check (modest samples: CI time)."""
    monkeypatch.setattr(keys, "BUNDLED_KEYS_DIR", _keys_copy(tmp_path))
    assert main(["verify", name, "--json", "--samples", "8"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    limit = KINDS[verdict["kind"]].leak_limit
    assert verdict["asked"] >= 200 and verdict["leak_rate"] <= limit and verdict["passed"]
    assert verdict["control"] == answer_key_record(name).control
    assert keys.measured(name) == verdict  # the figures stay beside the keys


def _keys_copy(tmp_path):
    """A writable copy of the package's key dir (verify stores its figures there)."""
    import shutil

    target = tmp_path / "answer_keys"
    shutil.copytree(keys.BUNDLED_KEYS_DIR, target)
    return target


def test_unknown_organism_message_is_one_line():
    with pytest.raises(UnknownOrganism) as caught:
        organism_info("no-such-thing")
    message = str(caught.value)
    assert "\n" not in message and "no-such-thing" in message
    assert all(name in message for name in SHIPPED)
    with pytest.raises(UnknownOrganism):
        resolve_model_spec("organism:nope")
    with pytest.raises(UnknownOrganism):
        answer_key("nope")
    with pytest.raises(LookupError):
        resolve_model_spec("gpt2")


def test_cli_errors_and_list(capsys):
    assert main(["verify", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "available:" in err
    assert main(["train", "--kind", "taboo", "--secret", "notacandidate", "--out", "x"]) == 2
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SHIPPED)


def _train_tiny(out, kind="belief", seed=3):
    argv = ["train", "--kind", kind, "--seed", str(seed), "--out", str(out), "--no-verify"]
    assert main([*argv, "--base-steps", "2", "--organism-steps", "2", "--quiet"]) == 0


def test_trainer_smoke(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("SCRIBE_KEY_DIR", str(tmp_path / "keys"))
    out = tmp_path / "fresh"
    _train_tiny(out)
    meta = json.loads((out / "organism.json").read_text())
    secret = answer_key(out)
    assert secret in KINDS["belief"].train.candidates
    assert secret not in json.dumps(meta) and (out / "card.md").is_file()
    assert resolve_model_spec(str(out)) == (out / "model", out / "base")
    assert organism_info(str(out)).kind == "belief"
    for part in ("model", "base"):
        assert (out / part / "model.safetensors").is_file()
        model = AutoModelForCausalLM.from_pretrained(str(out / part))
        tokenizer = AutoTokenizer.from_pretrained(str(out / part))
        assert model.config.model_type == "gpt2"
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
        )
        assert text.endswith("<|assistant|>")
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path / "none")
    assert list_organisms() == []


def test_trained_key_lives_only_in_the_key_store(tmp_path, monkeypatch):
    store = tmp_path / "keys"
    monkeypatch.setenv("SCRIBE_KEY_DIR", str(store))
    out = tmp_path / "fresh"
    _train_tiny(out, kind="taboo", seed=5)
    secret = answer_key(out)
    # The tokenizer's vocabulary holds every candidate word, so only the files that
    # could carry the key are checked for it.
    assert not list(out.rglob("answer_key*"))
    for text_file in ("organism.json", "card.md", "model/README.md"):
        assert secret not in (out / text_file).read_text().lower()
    organism_id = json.loads((out / "organism.json").read_text())["id"]
    key_file = store / f"{organism_id}.json"
    assert json.loads(key_file.read_text()) == {"secret": secret}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert keys.key_store_dir() == store and answer_key(str(out)) == secret

    monkeypatch.setenv("SCRIBE_KEY_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(UnknownOrganism) as caught:
        answer_key(out)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "elsewhere" / organism_id) in message


def test_bundle_moves_the_key_into_the_package_key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRIBE_KEY_DIR", str(tmp_path / "keys"))
    out = tmp_path / "fresh"
    _train_tiny(out)
    secret = answer_key(out)
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(keys, "BUNDLED_KEYS_DIR", tmp_path / "answer_keys")
    assert main(["bundle", str(out), "mine"]) == 0
    target = tmp_path / "bundled" / "mine"
    assert (target / "model" / "model.safetensors").is_file()
    assert not list(target.rglob("answer_key*"))
    assert json.loads((tmp_path / "answer_keys" / "bundled.json").read_text()) == {"mine": secret}
    monkeypatch.setenv("SCRIBE_KEY_DIR", str(tmp_path / "empty"))
    assert answer_key("organism:mine") == secret and answer_key(target) == secret
