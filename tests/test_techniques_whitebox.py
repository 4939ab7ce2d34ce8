"""scribe_tui.techniques, white-box: activations, attention, contrastive directions,
steering, patching and base-model diffing on every architecture (see test_techniques.py);
hooks, transport through the host's executor, and the cost of importing the library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import technique_models
import torch
from technique_models import (
    ARCHITECTURES,
    PATHS,
    QUESTION,
    arch_of,
    build_tokenizer,
    config_for,
    hooks,
    tolerance,
)

import scribe_tui.techniques as tq
from scribe_tui.runtime.executor import ModelExecutor
from scribe_tui.runtime.loading import LoadedModel, load_base, resolve_model
from scribe_tui.techniques.locate import hidden_of, resolve_layers

checkpoints, load, lm = technique_models.checkpoints, technique_models.load, technique_models.lm


# --- activations ----------------------------------------------------------------------------------


def test_capture_activations_by_layer_and_by_module_name(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    layers_path, norm_path = PATHS[arch_of(lm)]
    ids = tok("the moon is bright", return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
    got = tq.capture_activations(model, tok, "the moon is bright", layers=[0, -1], positions=None)
    acts = got["activations"]
    assert (
        list(acts) == [f"{layers_path}.0", f"{layers_path}.1"]
        and len(got["tokens"]) == ids.shape[1]
    )
    assert torch.allclose(acts[f"{layers_path}.0"], hidden[1][0].float(), atol=tolerance(lm))
    with torch.no_grad():  # the last block's output is the residual before the final norm
        normed = model.get_submodule(norm_path)(acts[f"{layers_path}.1"].to(hidden[2].dtype))
    assert torch.allclose(normed.float(), hidden[2][0].float(), atol=tolerance(lm) * 10)
    mlp = f"{layers_path}.0.mlp"
    one = tq.capture_activations(model, tok, "the moon", modules=[mlp], positions=-1)
    assert list(one["activations"]) == [mlp] and one["activations"][mlp].shape == (32,)
    two = tq.capture_activations(model, tok, "the moon", layers=1, positions=[0, -1])
    assert two["activations"][f"{layers_path}.1"].shape == (2, 32)


def test_attention_patterns(lm: LoadedModel) -> None:
    before = lm.model.config._attn_implementation
    got = tq.attention_patterns(lm.model, lm.tokenizer, "the moon is bright")
    assert lm.model.config._attn_implementation == before
    assert set(got["patterns"]) == {0, 1}
    n = len(got["tokens"])
    for pattern in got["patterns"].values():
        assert pattern.shape == (lm.model.config.num_attention_heads, n, n)
        assert torch.allclose(
            pattern.sum(-1), torch.ones(pattern.shape[:2]), atol=tolerance(lm) * 10
        )
        assert float(pattern.triu(1).abs().max()) == 0.0  # causal: nothing attends ahead
    one = tq.attention_patterns(lm.model, lm.tokenizer, "the moon", layers=[1], heads=[0])
    assert list(one["patterns"]) == [1] and one["patterns"][1].shape[0] == 1


def test_contrastive_direction_is_the_difference_of_means(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    positive, negative = ["the moon is bright", "the star is far"], ["the cat sat", "the dog ran"]
    got = tq.contrastive_direction(model, tok, positive, negative, layer=0)
    name = got["module"]

    def mean(prompts: list[str]) -> torch.Tensor:
        rows = [
            tq.capture_activations(model, tok, p, modules=[name])["activations"][name]
            for p in prompts
        ]
        return torch.stack(rows).mean(0)

    assert torch.allclose(got["direction"], mean(positive) - mean(negative), atol=1e-5)
    assert got["norm"] == pytest.approx(float(got["direction"].norm()), rel=1e-5)
    gap = sum(got["positive_projections"]) / 2 - sum(got["negative_projections"]) / 2
    assert gap == pytest.approx(got["norm"], rel=1e-3, abs=1e-3)


# --- interventions --------------------------------------------------------------------------------


def test_steering_adds_the_direction_and_only_while_generating(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    layers_path, _ = PATHS[arch_of(lm)]
    directions = [torch.randn(32, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    still = tq.steer(model, tok, QUESTION, directions[0], layer=0, scale=0.0, max_new_tokens=5)
    assert still["steered"] == still["baseline"]
    # The same as adding the vector by hand, at the block's output, at every position.
    pushed = [
        tq.steer(model, tok, QUESTION, d.tolist(), layer=0, scale=20.0, max_new_tokens=5)
        for d in directions
    ]
    block = model.get_submodule(layers_path)[0]
    vector = 20.0 * directions[0].to(next(model.parameters()).dtype)
    handle = block.register_forward_hook(lambda m, a, out: hidden_of(out) + vector)
    try:
        by_hand = tq.sample_chat(model, tok, QUESTION, temperature=0, max_new_tokens=5)[QUESTION]
    finally:
        handle.remove()
    assert pushed[0]["steered"] == by_hand and pushed[0]["baseline"] == still["baseline"]
    assert any(p["steered"] != p["baseline"] for p in pushed)
    with pytest.raises(ValueError, match="dims"):
        tq.steer(model, tok, QUESTION, [1.0, 2.0], layer=0)


def test_activation_patching_restores_what_it_patches(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    clean, corrupted = "the moon is bright at", "the sun is bright at"
    assert len(tok(clean).input_ids) == len(tok(corrupted).input_ids)
    # Every position of any block's output carries the whole clean run downstream.
    whole = tq.activation_patching(model, tok, clean, corrupted, target="night", position=None)
    assert [x["layer"] for x in whole["layers"]] == [0, 1]
    assert all(
        x["score"] == pytest.approx(whole["clean"], abs=tolerance(lm) * 50) for x in whole["layers"]
    )
    # The last position of the last block is all the next-token prediction reads.
    last = tq.activation_patching(
        model, tok, clean, corrupted, target="night", foil="day", layers=[-1]
    )
    assert last["layers"][0]["score"] == pytest.approx(last["clean"], abs=tolerance(lm) * 50)
    assert last["target_token"].strip() == "night" or last["target_token"].strip() in "night"
    with pytest.raises(ValueError, match="equal length"):
        tq.activation_patching(model, tok, clean, "the sun", target="night", position=None)


# --- diffing --------------------------------------------------------------------------------------


def test_a_model_diffed_against_itself_shows_no_change(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    prompts = [QUESTION, "give me a hint"]
    base = tq.next_token_logprobs(model, tok, prompts)
    diff = tq.diff_next_token(model, tok, prompts, base_logprobs=base, top_k=3)
    assert len(diff["gains"]) == 3 and all(abs(g["delta"]) < 1e-6 for g in diff["gains"])
    assert diff["kl"] == pytest.approx([0.0, 0.0], abs=1e-6)
    with pytest.raises(ValueError, match="same prompts"):
        tq.diff_next_token(model, tok, prompts[:1], base_logprobs=base)
    captured = tq.capture_activations(model, tok, "the moon is", layers=None, positions=None)
    same = tq.diff_activations(model, tok, base=captured)
    for report in same["modules"].values():
        assert report["cosine"] == pytest.approx(1.0, abs=1e-4) and report["relative_change"] < 1e-4


def test_a_lora_adapter_loads_through_the_host_path_and_diffs_against_its_base(
    checkpoints: dict[tuple[str, bool], Path], load: Any
) -> None:
    adapter_dir = checkpoints["llama+lora", True]
    resolved = resolve_model(str(adapter_dir))
    assert resolved.adapter == str(adapter_dir) and resolved.base == str(checkpoints["llama", True])
    tuned = load("llama+lora", "float32", True)
    assert type(tuned.model).__name__ == "LlamaForCausalLM"  # merged: hooks see plain modules
    base = load_base(resolved, device="cpu", dtype="float32")
    prompts = [QUESTION, "give me a hint"]
    diff = tq.diff_next_token(
        tuned.model,
        tuned.tokenizer,
        prompts,
        base_logprobs=tq.next_token_logprobs(base, tuned.tokenizer, prompts),
    )
    assert min(diff["kl"]) > 0 and diff["gains"][0]["delta"] > 0 > diff["losses"][0]["delta"]
    captured = tq.capture_activations(
        base, tuned.tokenizer, "the moon is", layers=[0], positions=None
    )
    moved = tq.diff_activations(tuned.model, tuned.tokenizer, base=captured)["modules"][
        "model.layers.0"
    ]
    assert moved["relative_change"] > 1e-4 and moved["cosine"] < 1.0

    from peft import PeftModel  # unmerged, as an agent might load it itself

    wrapped = PeftModel.from_pretrained(base, str(adapter_dir))
    info = tq.get_model_info(wrapped, tuned.tokenizer)
    assert info["is_peft"] and info["peft_info"]["r"] == 4 and info["final_norm"] == "model.norm"
    lens = tq.logit_lens(wrapped, tuned.tokenizer, "the moon is", top_k=3)
    merged = tq.logit_lens(tuned.model, tuned.tokenizer, "the moon is", top_k=3)
    assert [t["token_id"] for t in lens["layers"][-1]["top_tokens"]] == [
        t["token_id"] for t in merged["layers"][-1]["top_tokens"]
    ]


# --- hooks, transport, import cost ----------------------------------------------------------------


def test_hooks_are_removed_when_a_technique_fails(load: Any) -> None:
    lm = load("qwen2", "float32", True)
    before = hooks(lm.model)
    layers_path, _ = PATHS["qwen2"]
    with pytest.raises(KeyError):
        tq.capture_activations(
            lm.model, lm.tokenizer, "the moon", modules=[f"{layers_path}.0", "nope"]
        )
    with pytest.raises(IndexError):  # raised inside the patching hook, mid-forward
        tq.activation_patching(
            lm.model, lm.tokenizer, "the moon", "the sun", target="is", position=40
        )
    assert hooks(lm.model) == before


CALLS = [
    (tq.get_model_info, {}),
    (tq.generate_text, {"prompt": "the moon", "max_new_tokens": 3}),
    (tq.prefill_attack, {"user_prompt": QUESTION, "prefill_text": " my", "max_new_tokens": 3}),
    (tq.sample_chat, {"prompts": [QUESTION], "n": 2, "max_new_tokens": 3}),
    (
        tq.persona_sample,
        {"messages": [{"role": "user", "content": "hi"}], "n": 2, "max_new_tokens": 3},
    ),
    (
        tq.reply_sample,
        {"messages": [{"role": "user", "content": "hi"}], "n": 2, "max_new_tokens": 3},
    ),
    (tq.analyze_token_probs, {"prompt": "the moon", "target_tokens": [" is"]}),
    (tq.next_token_probs, {"prompt": QUESTION}),
    (tq.word_probs, {"prompt": QUESTION, "words": ["moon"]}),
    (tq.next_token_logprobs, {"prompts": [QUESTION]}),
    (tq.response_logprobs, {"prompt": QUESTION, "response": " moon"}),
    (tq.logit_lens, {"prompt": "the moon"}),
    (tq.lens_votes, {"conversations": [("hi", "the moon")]}),
    (tq.capture_activations, {"prompt": "the moon", "positions": None}),
    (tq.attention_patterns, {"prompt": "the moon"}),
    (tq.contrastive_direction, {"positive": ["the moon"], "negative": ["the sun"], "layer": 0}),
    (
        tq.activation_patching,
        {"clean_prompt": "the moon", "corrupted_prompt": "the sun", "target": "is"},
    ),
    (tq.steer, {"prompt": QUESTION, "direction": [0.1] * 32, "layer": 0, "max_new_tokens": 3}),
    (tq.word_continuations, {"prompt": QUESTION, "prefill": " my", "top_k": 3}),
    (tq.phrase_fit, {"phrases": ["the moon", "a zebra"]}),
    (tq.lens_words, {"contexts": [(QUESTION, " my")], "top_k": 3}),
    (tq.trigger_scan, {"prompts": [QUESTION], "words": ["moon", "zebra"]}),
    (tq.vocabulary_words, {"max_tokens": 2}),
]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_technique_travels_through_the_host_executor(arch: str, load: Any) -> None:
    lm = load(arch, "bfloat16", False)
    executor = ModelExecutor(
        lm.model, lm.tokenizer, name="t", mode="local", device="cpu", dtype=lm.dtype
    )
    before = hooks(lm.model)
    assert {fn for fn, _ in CALLS} | {tq.diff_next_token, tq.diff_activations} == set(tq.TECHNIQUES)
    for fn, kwargs in CALLS:
        payload = cloudpickle.dumps((fn, kwargs))
        assert len(payload) < 1000, "shipped by reference: the host imports the library"
        reply = executor.run(payload)
        assert reply["ok"], (fn.__name__, reply.get("error"))
        assert len(reply["value"]) < 200_000, f"{fn.__name__} returned too much"
    assert hooks(lm.model) == before


def test_hidden_states_survive_the_hosts_restore_of_hooks() -> None:
    """transformers adds output-capturing hooks on first use and flags the model; the
    host removes hooks after each call, so it must reset the flag too."""
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer()
    model = AutoModelForCausalLM.from_config(config_for("qwen2", tok)).eval()
    executor = ModelExecutor(model, tok, name="t", mode="local", device="cpu", dtype="float32")
    for _ in range(2):
        reply = executor.run(cloudpickle.dumps((tq.logit_lens, {"prompt": "the moon"})))
        assert reply["ok"] and cloudpickle.loads(reply["value"])["num_layers"] == 3


def test_importing_the_library_loads_neither_torch_nor_transformers() -> None:
    probe = (
        "import sys, scribe_tui.techniques as t\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules), len(t.TECHNIQUES))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["[]", str(len(tq.TECHNIQUES))], result.stderr


def test_describe_lists_every_technique_with_its_signature() -> None:
    text = tq.describe()
    for fn in tq.TECHNIQUES:
        assert f"- {tq.signature(fn)}: " in text
    assert "logit_lens(prompt, top_k=10, layers=None, position=-1, chat=False)" in text
    assert "model, tokenizer" not in text.split("Helpers")[0]


def test_anatomy_finds_an_unknown_architecture_by_shape() -> None:
    """A layout none of the six uses (MPT-like): blocks and norm are found by shape."""
    from torch import nn

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(10, 8)
            self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
            self.norm_f = nn.LayerNorm(8)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = type("Config", (), {})()
            self.transformer, self.head = Decoder(), nn.Linear(8, 10)

        def get_output_embeddings(self) -> nn.Module:
            return self.head

    model = Model()
    parts = tq.anatomy(model)
    assert (parts.layers_path, parts.norm_path) == ("transformer.blocks", "transformer.norm_f")
    assert parts.final_norm is model.transformer.norm_f and parts.logit_softcap is None
    hidden = torch.randn(2, 8)
    expected = model.head(model.transformer.norm_f(hidden))
    assert torch.allclose(tq.decode_residual(parts, hidden), expected)
    with pytest.raises(IndexError, match="out of range"):
        resolve_layers(parts, [3])
