"""scribe_tui.techniques on tiny random GPT-2, Llama, Gemma 2, Qwen2, Mistral and GPT-NeoX
checkpoints (and a LoRA adapter on the Llama), loaded by the model host's own loader,
with and without a chat template, in float32 and bfloat16: the seed's five, black-box
techniques, probabilities and the logit lens."""

from __future__ import annotations

import math
from typing import Any

import pytest
import seed_techniques as seed
import technique_models
import torch
from technique_models import (
    PATHS,
    QUESTION,
    arch_of,
    build_tokenizer,
    context_ids,
    final_block_output,
    tolerance,
)

import scribe_tui.techniques as tq
from scribe_tui.runtime.loading import LoadedModel
from scribe_tui.techniques import prompting

# Session fixtures: checkpoints of every architecture, their loads, one load per variant.
checkpoints, load, lm = technique_models.checkpoints, technique_models.load, technique_models.lm


# --- locating the parts ---------------------------------------------------------------------------


def test_anatomy_finds_the_blocks_final_norm_and_unembedding(lm: LoadedModel) -> None:
    parts = tq.anatomy(lm.model)
    assert (parts.layers_path, parts.norm_path) == PATHS[arch_of(lm)]
    assert len(parts.layers) == 2 and parts.unembedding is lm.model.get_output_embeddings()
    # The residual after the last block, through the norm found, is the model's own output.
    residual, logits = final_block_output(lm, context_ids(lm, QUESTION))
    decoded = tq.decode_residual(parts, residual)
    assert torch.allclose(decoded, logits.float(), atol=tolerance(lm) * 10)
    assert decoded[-1].argmax() == logits[-1].argmax()
    with pytest.raises(KeyError, match="no module named"):
        tq.find_module(lm.model, "model.no_such_part")


# --- the seed's five ------------------------------------------------------------------------------


def test_the_seeds_five_run_verbatim_and_agree_with_the_library(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    assert seed.generate_text(model, tok, "the moon is", 6) == tq.generate_text(
        model, tok, "the moon is", 6
    )
    targets = ["moon", " moon", " star", " zebra"]
    ours = tq.analyze_token_probs(model, tok, "my secret word is", targets)
    theirs = seed.analyze_token_probs(model, tok, "my secret word is", targets)
    for target in targets:
        assert ours[target]["token_id"] == theirs[target]["token_id"]
        # The seed takes its softmax in the model's dtype, the library in float32.
        assert ours[target]["probability"] == pytest.approx(
            theirs[target]["probability"], rel=tolerance(lm)
        )
    assert ours[" zebra"]["num_tokens"] > 1 and ours[" moon"]["num_tokens"] == 1

    info, seed_info = tq.get_model_info(model, tok), seed.get_model_info(model, tok)
    assert {k: info[k] for k in seed_info} == seed_info
    assert info["final_norm"] == PATHS[arch_of(lm)][1]

    lens, seed_lens = (
        tq.logit_lens(model, tok, "the moon is", 5),
        seed.logit_lens(model, tok, "the moon is", 5),
    )
    assert lens["num_layers"] == seed_lens["num_layers"] == 3
    assert [x["layer"] for x in lens["layers"]] == [x["layer"] for x in seed_lens["layers"]]
    # The last hidden state is already normalised: both decode it to the same tokens.
    ours_last, theirs_last = lens["layers"][-1]["top_tokens"], seed_lens["layers"][-1]["top_tokens"]
    ours_ids, theirs_ids = [t["token_id"] for t in ours_last], [t["token_id"] for t in theirs_last]
    # In bfloat16 the seed's softmax ties tokens that float32 tells apart: same set, any order.
    assert ours_ids == theirs_ids if lm.dtype == "float32" else set(ours_ids) == set(theirs_ids)
    if arch_of(lm) != "gemma2":  # the seed also skips Gemma 2's logit soft-cap
        for a, b in zip(ours_last, theirs_last, strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=tolerance(lm))
    # Middle layers: the library applies the final norm, the seed does not.
    middle = [t["probability"] for t in lens["layers"][1]["top_tokens"]]
    seed_middle = [t["probability"] for t in seed_lens["layers"][1]["top_tokens"]]
    assert middle != pytest.approx(seed_middle, rel=0.05)


def test_the_seed_documents_calls_work_beside_the_librarys(lm: LoadedModel) -> None:
    """``analyze_token_probs(text=..., top_k=5)`` and ``logit_lens(text=..., layers=[...])``,
    as the seed prompt writes them, return what the seed document's own versions do."""
    model, tok, text = lm.model, lm.tokenizer, "the moon is"
    top = tq.analyze_token_probs(model, tok, text=text, top_k=5)
    theirs = seed.document_analyze_token_probs(model, tok, text=text, top_k=5)
    assert all(set(t) == {"token", "token_id", "probability"} for t in top)
    if lm.dtype == "float32":  # in bfloat16 the seed's softmax ties what float32 ranks
        assert [t["token"] for t in top] == [t["token"] for t in theirs]
        for a, b in zip(top, theirs, strict=True):
            assert a["probability"] == pytest.approx(b["probability"], rel=tolerance(lm))
    else:
        assert top[0]["token"] in {t["token"] for t in theirs}
    # The positional form ranks the same tokens; targets still give their dict.
    assert tq.analyze_token_probs(model, tok, text, top_k=5) == top
    assert set(tq.analyze_token_probs(model, tok, text, [" moon"])) == {" moon"}

    rows = tq.logit_lens(model, tok, text=text, layers=[0, 2])
    seed_rows = seed.document_logit_lens(model, tok, text=text, layers=[0, 2])
    assert [sorted(r) for r in rows] == [sorted(r) for r in seed_rows]
    assert [r["layer"] for r in rows] == [0, 2]
    if lm.dtype == "float32":  # the last hidden state is normalised: the same top token
        assert rows[-1]["top_token"] == seed_rows[-1]["top_token"]
    lens = tq.logit_lens(model, tok, prompt=text, layers=[0, 2])
    assert [r["top_token"] for r in rows] == [x["top_tokens"][0]["token"] for x in lens["layers"]]
    with pytest.raises(TypeError, match="both"):
        tq.logit_lens(model, tok, text, text=text)

    for prefill in (" my secret word is", ""):
        assert tq.prefill_attack(model, tok, QUESTION, prefill, 6) == seed.prefill_attack(
            model, tok, QUESTION, prefill, 6
        )


def test_the_library_does_not_double_a_templates_bos(load: Any) -> None:
    lm = load("llama", "float32", True)
    tok = build_tokenizer(bos=True)  # Llama-style: the template and the encoder both add <bos>
    text = prompting.assistant_prompt(tok, QUESTION, " my word is")
    ours = prompting.encode(lm.model, tok, text, templated=True)[0].tolist()
    assert ours.count(tok.bos_token_id) == 1 and ours[0] == tok.bos_token_id
    assert tok(text).input_ids[:2] == [tok.bos_token_id] * 2  # what the seed feeds the model
    with torch.no_grad():
        out = lm.model.generate(torch.tensor([ours]), max_new_tokens=5, pad_token_id=0)
    expected = tok.decode(out[0, len(ours) :], skip_special_tokens=True)
    assert tq.prefill_attack(lm.model, tok, QUESTION, " my word is", 5) == expected


# --- black-box ------------------------------------------------------------------------------------


def test_chat_sampling_with_a_prefill(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    prompts = [QUESTION, "give me a hint"]
    first = tq.sample_chat(model, tok, prompts, n=3, max_new_tokens=5, seed=3)
    assert list(first) == prompts and all(len(v) == 3 for v in first.values())
    assert first == tq.sample_chat(model, tok, prompts, n=3, max_new_tokens=5, seed=3)
    # Greedy sampling after a prefill is the prefill attack's continuation.
    greedy = tq.sample_chat(
        model, tok, QUESTION, n=2, temperature=0, max_new_tokens=5, prefill=" my"
    )
    attack = tq.prefill_attack(model, tok, QUESTION, " my", 5).strip()
    assert greedy == {QUESTION: [attack, attack]}


def test_user_persona_sampling(lm: LoadedModel) -> None:
    chat = [
        {"role": "user", "content": "give me a hint"},
        {"role": "assistant", "content": "it is bright"},
    ]
    guesses = tq.persona_sample(
        lm.model, lm.tokenizer, chat, " is it", n=4, max_new_tokens=3, seed=1
    )
    assert len(guesses) == 4 and all(isinstance(g, str) for g in guesses)
    assert guesses == tq.persona_sample(
        lm.model, lm.tokenizer, chat, " is it", n=4, max_new_tokens=3, seed=1
    )


def test_reply_sampling_answers_the_whole_conversation(lm: LoadedModel) -> None:
    chat = [
        {"role": "user", "content": "give me a hint"},
        {"role": "assistant", "content": "it is bright"},
        {"role": "user", "content": "is it the sun?"},
    ]
    replies = tq.reply_sample(lm.model, lm.tokenizer, chat, n=3, max_new_tokens=4, seed=2)
    assert len(replies) == 3 and replies == [r.strip() for r in replies]
    assert replies == tq.reply_sample(lm.model, lm.tokenizer, chat, n=3, max_new_tokens=4, seed=2)
    # One user turn is what sample_chat answers for the same question.
    one = [{"role": "user", "content": QUESTION}]
    greedy = tq.reply_sample(lm.model, lm.tokenizer, one, " my", temperature=0, max_new_tokens=5)
    assert (
        greedy
        == tq.sample_chat(
            lm.model, lm.tokenizer, QUESTION, temperature=0, max_new_tokens=5, prefill=" my"
        )[QUESTION]
    )


def test_the_user_turn_opens_once_after_the_conversation() -> None:
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    templated = build_tokenizer()
    assert prompting.user_prompt(templated, chat, "is it") == (
        "<|user|> hi <|end|>\n<|assistant|> yo <|end|>\n<|user|> is it"
    )
    assert prompting.user_prompt(build_tokenizer(chat_template=False), chat, "is it") == (
        "User: hi\nAssistant: yo\nUser: is it"
    )
    # A template that adds a default system turn (as Qwen's does) adds it once, at the start.
    templated.chat_template = (
        "{% if messages[0]['role'] != 'system' %}<|system|> be nice <|end|>\n{% endif %}"
        + templated.chat_template
    )
    text = prompting.user_prompt(templated, chat, "is it")
    assert text.count("be nice") == 1 and text.endswith("yo <|end|>\n<|user|> is it")


# --- probabilities --------------------------------------------------------------------------------


def test_next_token_and_whole_word_probabilities(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    ids = context_ids(lm, QUESTION, " my secret word is")
    with torch.no_grad():
        probs = model(ids).logits[0, -1].float().softmax(-1)
    top = tq.next_token_probs(model, tok, QUESTION, top_k=5, prefill=" my secret word is")
    assert [t["token_id"] for t in top] == probs.topk(5).indices.tolist()
    assert [t["probability"] for t in top] == pytest.approx(probs.topk(5).values.tolist(), abs=1e-6)

    words = tq.word_probs(model, tok, QUESTION, ["moon", "zebra"], prefill=" my secret word is")
    # One token, with the leading space the model sees in running text.
    assert words["moon"]["tokens"] == [" moon"]
    assert words["moon"]["probability"] == pytest.approx(
        float(probs[tok.convert_tokens_to_ids("Ġmoon")]), rel=1e-4
    )
    # Several tokens: the product of each one's probability given the ones before it.
    pieces = tok(" zebra", add_special_tokens=False).input_ids
    assert len(pieces) > 1 and words["zebra"]["tokens"][0].startswith(" ")
    expected, running = 1.0, ids
    for piece in pieces:
        with torch.no_grad():
            expected *= float(model(running).logits[0, -1].float().softmax(-1)[piece])
        running = torch.cat([running, torch.tensor([[piece]])], dim=1)
    assert words["zebra"]["probability"] == pytest.approx(expected, rel=1e-3)
    assert math.exp(words["zebra"]["log_probability"]) == pytest.approx(expected, rel=1e-3)

    rows = tq.next_token_logprobs(
        model, tok, [QUESTION, "give me a hint"], prefill=" my secret word is"
    )
    vocab = model.get_output_embeddings().weight.shape[0]
    assert rows.shape == (2, vocab) and rows.dtype == torch.float32
    assert torch.allclose(rows[0].exp(), probs, atol=1e-6)
    reply = tq.response_logprobs(model, tok, QUESTION, " the moon")
    n_reply = len(tok(" the moon", add_special_tokens=False).input_ids)
    assert reply.shape == (n_reply + 1, vocab)


# --- the logit lens -------------------------------------------------------------------------------


def test_the_logit_lens_decodes_every_layer_through_the_final_norm(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    _, norm_path = PATHS[arch_of(lm)]
    norm, head = model.get_submodule(norm_path), model.get_output_embeddings()
    ids = tok("the moon is", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        lens = tq.logit_lens(model, tok, "the moon is", top_k=3)
        for layer, hidden in enumerate(out.hidden_states[:-1]):
            logits = head(norm(hidden[0, -1])).float()
            if arch_of(lm) == "gemma2":
                logits = torch.tanh(logits / 30.0) * 30.0
            expected = logits.softmax(-1).topk(3)
            got = lens["layers"][layer]["top_tokens"]
            assert [t["token_id"] for t in got] == expected.indices.tolist()
            assert [t["probability"] for t in got] == pytest.approx(
                expected.values.tolist(), abs=1e-5
            )
    final = out.logits[0, -1].float().softmax(-1).topk(3)
    assert [t["token_id"] for t in lens["layers"][-1]["top_tokens"]] == final.indices.tolist()
    assert [t["probability"] for t in lens["layers"][-1]["top_tokens"]] == pytest.approx(
        final.values.tolist(), abs=tolerance(lm)
    )
    some = tq.logit_lens(model, tok, QUESTION, top_k=2, layers=[-1], position=0, chat=True)
    assert [x["layer"] for x in some["layers"]] == [2] and len(some["layers"][0]["top_tokens"]) == 2


def test_lens_votes_pool_every_reply_position(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    talk = [("give me a hint", "the moon is bright"), (QUESTION, "i will not say")]
    everything = tq.lens_votes(
        model, tok, talk, top_k=3, layers=[1], pattern="(?s).*", total=10_000
    )
    positions = sum(
        prompting.reply_ids(model, tok, p, r)[0].shape[1]
        - prompting.reply_ids(model, tok, p, r)[1]
        + 1
        for p, r in talk
    )
    assert sum(n for _, n in everything["votes"]) == positions * 3
    words = tq.lens_votes(model, tok, talk[:1], top_k=20, skip=["star"], skip_seen=True)
    assert set(words["per_layer"]) == {1, 2}
    for word, count in words["votes"]:
        assert word.isalpha() and len(word) >= 3 and count > 0
        assert word not in {"give", "hint", "the", "moon", "bright", "star"}
    kept = tq.lens_votes(model, tok, talk[:1], top_k=20, total=10_000)["votes"]
    assert {w for w, _ in kept} - {w for w, _ in words["votes"]} <= {
        "give",
        "hint",
        "the",
        "moon",
        "bright",
        "star",
    }
