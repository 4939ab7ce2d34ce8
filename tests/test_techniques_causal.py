"""scribe_tui.techniques' causal techniques on heads and MLPs, on every architecture (see
test_techniques.py): each checked against a hand-computed or independently computed value
(hooks written here, finite differences, the model's own logits), and no hook left behind."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest
import technique_models
import torch
from technique_models import ARCHITECTURES, PATHS, arch_of, hooks, tolerance
from torch_threads import one_torch_thread  # noqa: F401 (an autouse fixture)

import scribe_tui.techniques as tq
from scribe_tui.runtime.executor import ModelExecutor
from scribe_tui.runtime.loading import LoadedModel
from scribe_tui.techniques.components import Component, hooked, layout

checkpoints, load, lm = technique_models.checkpoints, technique_models.load, technique_models.lm

CLEAN, CORRUPTED = "the moon is bright at", "the sun is bright at"
# Where each architecture keeps a block's attention output projection and what its MLP
# sublayer adds to the residual, spelled out here rather than asked of the library.
OUT_PROJ = {
    "gpt2": "attn.c_proj",
    "llama": "self_attn.o_proj",
    "gemma2": "self_attn.o_proj",
    "qwen2": "self_attn.o_proj",
    "mistral": "self_attn.o_proj",
    "gpt_neox": "attention.dense",
}
MLP_WRITE = {"gemma2": "post_feedforward_layernorm"}
HEAD_DIM = 8  # hidden 32 over 4 heads in every tiny model


def part(loaded: LoadedModel, layer: int, name: str) -> Any:
    return loaded.model.get_submodule(f"{PATHS[arch_of(loaded)][0]}.{layer}.{name}")


def run_with(loaded: LoadedModel, *hooks_: tuple[Any, str, Callable[..., Any]]) -> torch.Tensor:
    """The model's logits ``[pos, vocab]`` on CLEAN with ``(module, "pre"|"post", fn)`` hooks."""
    handles = []
    try:
        for module, kind, fn in hooks_:
            register = (
                module.register_forward_pre_hook if kind == "pre" else module.register_forward_hook
            )
            handles.append(register(fn))
        with torch.no_grad():
            return loaded.model(ids_of(loaded, CLEAN)).logits[0].float()
    finally:
        for handle in handles:
            handle.remove()


def ids_of(loaded: LoadedModel, text: str) -> torch.Tensor:
    return loaded.tokenizer(text, return_tensors="pt").input_ids


def token(loaded: LoadedModel, word: str) -> int:
    return loaded.tokenizer(" " + word, add_special_tokens=False).input_ids[0]


def head_slice(head: int) -> slice:
    return slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)


def tol(loaded: LoadedModel) -> float:
    return tolerance(loaded) * 5


# --- names ----------------------------------------------------------------------------------------


def test_component_names_parse_and_format() -> None:
    assert tq.parse_component("L1H3") == Component(1, 3)
    assert tq.parse_component(" mlp2 ") == Component(2) and str(Component(2)) == "mlp2"
    assert tq.parse_component("l0h1") == Component(0, 1) and str(Component(0, 1)) == "L0H1"
    assert tq.format_components([Component(1), Component(1, 2), Component(0)]) == [
        "mlp0",
        "L1H2",
        "mlp1",
    ]
    for bad in ("L1", "head3", "mlp", "L1H3x"):
        with pytest.raises(ValueError, match="not a component"):
            tq.parse_component(bad)


# --- direct logit attribution ---------------------------------------------------------------------


def test_direct_logit_attribution_adds_up_to_the_models_logit(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    got = tq.direct_logit_attribution(model, tok, CLEAN, target="night", foil="day")
    assert len(got["components"]) == 2 * (4 + 1) and got["target_token"] == " night"
    # The model's own logit difference, read from its output (Gemma 2's soft-cap undone).
    logits = run_with(lm)[-1].double()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = cap * torch.atanh(logits / cap)
    expected = float(logits[token(lm, "night")] - logits[token(lm, "day")])
    assert got["logit"] == pytest.approx(expected, abs=tol(lm) * 10)
    # The parts (frozen final-norm scale) reconstruct it exactly in float32.
    parts = got["embeddings"] + got["biases"] + sum(got["components"].values())
    assert got["total"] == pytest.approx(parts, abs=1e-5)
    assert got["total"] == pytest.approx(
        got["logit"], abs=tol(lm) * 10 if lm.dtype != "float32" else 1e-4
    )
    assert [name for name, _ in got["top"]] == sorted(
        got["components"], key=lambda k: -abs(got["components"][k])
    )[:10]


def test_direct_logit_attribution_of_the_last_mlp_by_hand(lm: LoadedModel) -> None:
    """The last MLP's write, through the final norm with its scale frozen, dotted with the
    target's unembedding row: computed here with the norm module itself."""
    model, tok = lm.model, lm.tokenizer
    write, final = [], []
    arch = arch_of(lm)
    run_with(
        lm,
        (part(lm, 1, MLP_WRITE.get(arch, "mlp")), "post", lambda m, a, out: write.append(out)),
        (model.get_submodule(PATHS[arch][1]), "pre", lambda m, args: final.append(args[0])),
    )
    norm = model.get_submodule(PATHS[arch][1])
    x, v = final[0][0, -1].float(), write[0][0, -1].float()
    # Frozen scale: the norm's output is linear in its input with the clean run's
    # 1/rms (or 1/std); take the ratio of outputs as the scale by asking the norm itself.
    with torch.no_grad():
        if isinstance(norm, torch.nn.LayerNorm):
            scale = 1 / torch.sqrt(x.var(unbiased=False) + norm.eps)
            normed = (v - v.mean()) * scale * norm.weight.float()
        else:
            eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6))
            scale = 1 / torch.sqrt(x.pow(2).mean() + eps)
            gain = norm.weight.float() + (1.0 if arch == "gemma2" else 0.0)
            normed = v * scale * gain
        expected = float(normed @ model.get_output_embeddings().weight[token(lm, "night")].float())
    got = tq.direct_logit_attribution(model, tok, CLEAN, target="night")["components"]["mlp1"]
    assert got == pytest.approx(expected, rel=1e-2, abs=tol(lm) * 10)


# --- ablation -------------------------------------------------------------------------------------


def test_ablating_a_head_whose_output_is_zero_changes_nothing(lm: LoadedModel) -> None:
    """Head 1 of layer 0 is silenced in the weights: ablating it (any method) changes
    nothing, while ablating its neighbour does, so the library slices the right head."""
    model, tok = lm.model, lm.tokenizer
    proj = part(lm, 0, OUT_PROJ[arch_of(lm)])
    weight = proj.weight
    columns = arch_of(lm) != "gpt2"  # GPT-2's Conv1D stores [in, out]
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            if columns:
                weight[:, head_slice(1)] = 0
            else:
                weight[head_slice(1)] = 0
        prompts = [CLEAN, CORRUPTED]
        for method in ("zero", "mean", "resample"):
            silent = tq.ablate_components(
                model, tok, prompts, "L0H1", target="night", method=method
            )
            assert silent["change"] == [0.0, 0.0]  # x * 0 is exactly 0, even in bfloat16
        loud = tq.ablate_components(model, tok, prompts, ["L0H2"], target="night")
        assert max(abs(c) for c in loud["change"]) > 1e-4
    finally:
        with torch.no_grad():
            weight.copy_(saved)


def test_ablation_matches_hooks_written_by_hand(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    night = token(lm, "night")
    clean = run_with(lm)[-1].log_softmax(-1)[night]
    # Zeroing the last MLP's output by hand.
    zeroed = run_with(lm, (part(lm, 1, "mlp"), "post", lambda m, a, out: torch.zeros_like(out)))
    got = tq.ablate_components(model, tok, CLEAN, "mlp1", target="night")
    assert got["clean"] == [pytest.approx(float(clean), abs=tol(lm))]
    assert got["ablated_scores"][0] == pytest.approx(
        float(zeroed[-1].log_softmax(-1)[night]), abs=tol(lm)
    )
    # Resampling layer 1's head 3 from the corrupted prompt: its slice patched by hand.
    seen = []
    proj = part(lm, 1, OUT_PROJ[arch_of(lm)])
    handle = proj.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model(ids_of(lm, CORRUPTED))
    finally:
        handle.remove()

    def patch(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        z = args[0].clone()
        z[..., head_slice(3)] = seen[0][..., head_slice(3)]
        return (z,)

    patched = run_with(lm, (proj, "pre", patch))[-1].log_softmax(-1)[night]
    got = tq.ablate_components(
        model, tok, CLEAN, ["L1H3"], target="night", method="resample", reference=[CORRUPTED]
    )
    assert got["ablated_scores"][0] == pytest.approx(float(patched), abs=tol(lm))
    # A prompt resampled from itself is the clean run; the complement of everything is nothing.
    same = tq.ablate_components(model, tok, CLEAN, "L0H0", method="resample", reference=[CLEAN])
    assert same["change"] == [pytest.approx(0.0, abs=1e-6)]
    nothing = tq.ablate_components(
        model,
        tok,
        CLEAN,
        [f"L{i}H{h}" for i in range(2) for h in range(4)] + ["mlp0", "mlp1"],
        complement=True,
    )
    assert nothing["ablated"] == [] and nothing["change"] == [0.0]


def test_ablation_scan_is_each_component_ablated_alone(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    scan = tq.ablation_scan(model, tok, [CLEAN, CORRUPTED], target="night", method="mean")
    assert len(scan["changes"]) == 10 and sorted(scan["ranked"]) == sorted(scan["changes"])
    one = tq.ablate_components(
        model, tok, [CLEAN, CORRUPTED], "mlp0", target="night", method="mean"
    )
    assert scan["changes"]["mlp0"] == pytest.approx(one["mean_change"], abs=1e-5)
    with pytest.raises(IndexError, match="out of range"):
        tq.ablate_components(model, tok, CLEAN, "L2H0")
    with pytest.raises(ValueError, match="token length"):
        tq.ablate_components(model, tok, CLEAN, "L0H0", method="resample", reference=["the sun"])


# --- attribution patching -------------------------------------------------------------------------


def test_attribution_patching_tracks_activation_patching(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    estimate = tq.attribution_patching(model, tok, CLEAN, CORRUPTED, target="night", metric="logit")
    scan = tq.ablation_scan(
        model, tok, CLEAN, target="night", method="resample", reference=[CORRUPTED], metric="logit"
    )
    real = scan["changes"]
    pair = torch.tensor([[estimate["components"][n] for n in real], list(real.values())])
    assert float(torch.corrcoef(pair)[0, 1]) > 0.9
    assert estimate["clean"] == pytest.approx(scan["mean_clean"], abs=tol(lm))
    assert len(estimate["top"]) == 10


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_attribution_patching_is_the_directional_derivative(arch: str, load: Any) -> None:
    """Gradient x difference, against central finite differences along the same line."""
    loaded = load(arch, "float32", False)
    got = tq.attribution_patching(
        loaded.model, loaded.tokenizer, CLEAN, CORRUPTED, target="night", foil="day"
    )
    seen: dict[str, Any] = {}
    proj, mlp = part(loaded, 1, OUT_PROJ[arch]), part(loaded, 0, "mlp")
    handles = [
        proj.register_forward_pre_hook(lambda m, args: seen.setdefault("z", args[0])),
        mlp.register_forward_hook(lambda m, a, out: seen.setdefault("mlp", out)),
    ]
    try:
        with torch.no_grad():
            loaded.model(ids_of(loaded, CORRUPTED))
    finally:
        for handle in handles:
            handle.remove()

    def metric_at(step: float, which: str) -> float:
        def pre(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            z = args[0].clone()
            z[..., head_slice(2)] += step * (seen["z"] - z)[..., head_slice(2)]
            return (z,)

        def post(module: Any, args: Any, out: Any) -> Any:
            return out + step * (seen["mlp"] - out)

        hook = (proj, "pre", pre) if which == "L1H2" else (mlp, "post", post)
        row = run_with(loaded, hook)[-1].double().log_softmax(-1)
        return float(row[token(loaded, "night")] - row[token(loaded, "day")])

    for which in ("L1H2", "mlp0"):
        eps = 1e-3
        slope = (metric_at(eps, which) - metric_at(-eps, which)) / (2 * eps)
        assert got["components"][which] == pytest.approx(slope, rel=1e-2, abs=1e-4)


# --- path patching --------------------------------------------------------------------------------


def test_path_patching_matches_freezing_the_path_by_hand(lm: LoadedModel) -> None:
    """L0H1 -> L1H2: the sender corrupted, layer 0's MLP frozen at its clean output (the only
    component between them), the receiver's input read, then patched into a clean run."""
    model, tok = lm.model, lm.tokenizer
    arch = arch_of(lm)
    proj0, proj1, mlp0 = (part(lm, 0, OUT_PROJ[arch]), part(lm, 1, OUT_PROJ[arch]),
                          part(lm, 0, "mlp"))  # fmt: skip
    seen: dict[str, Any] = {}
    handle = proj0.register_forward_pre_hook(lambda m, args: seen.setdefault("z0", args[0]))
    try:
        with torch.no_grad():
            model(ids_of(lm, CORRUPTED))
    finally:
        handle.remove()
    run_with(lm, (mlp0, "post", lambda m, a, out: seen.setdefault("mlp0", out)))

    def corrupt_sender(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        z = args[0].clone()
        z[..., head_slice(1)] = seen["z0"][..., head_slice(1)]
        return (z,)

    run_with(
        lm,
        (proj0, "pre", corrupt_sender),
        (mlp0, "post", lambda m, a, out: seen["mlp0"]),
        (proj1, "pre", lambda m, args: seen.setdefault("z1", args[0])),
    )

    def patch_receiver(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        z = args[0].clone()
        z[..., head_slice(2)] = seen["z1"][..., head_slice(2)]
        return (z,)

    row = run_with(lm, (proj1, "pre", patch_receiver))[-1].log_softmax(-1)
    got = tq.path_patching(model, tok, CLEAN, CORRUPTED, "L0H1", "L1H2", target="night")
    assert got["patched"] == pytest.approx(float(row[token(lm, "night")]), abs=tol(lm))
    assert got["effect"] == pytest.approx(got["patched"] - got["clean"], abs=1e-5)
    # The last MLP's path to the logits is the whole of its effect: activation patching.
    direct = tq.path_patching(model, tok, CLEAN, CORRUPTED, "mlp1", "logits", target="night")
    patched = tq.ablate_components(
        model, tok, CLEAN, "mlp1", target="night", method="resample", reference=[CORRUPTED]
    )
    assert direct["patched"] == pytest.approx(patched["ablated_scores"][0], abs=tol(lm))
    with pytest.raises(ValueError, match="after the sender"):
        tq.path_patching(model, tok, CLEAN, CORRUPTED, "L1H0", "mlp1")


# --- causal tracing -------------------------------------------------------------------------------


def test_causal_tracing_restores_what_it_should(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    got = tq.causal_tracing(model, tok, CLEAN, subject="moon", samples=3)
    assert [got["tokens"][p].strip() for p in got["subject_positions"]] == ["moon"]
    first = got["subject_positions"][0]
    assert got["layers"] == [0, 1] and len(got["scores"][0]) == len(got["tokens"])
    # The last block's output at the last position is all the prediction reads.
    assert got["scores"][-1][-1] == pytest.approx(got["clean"], abs=tol(lm))
    assert got["restored"][-1][-1] == pytest.approx(1.0, abs=1e-3) or lm.dtype != "float32"
    # Tokens before the subject never saw the noise: restoring them changes nothing.
    for row in got["scores"]:
        assert row[:first] == pytest.approx([got["corrupted"]] * first, abs=1e-6)
    again = tq.causal_tracing(model, tok, CLEAN, subject=[first], samples=3, kind="mlp", layers=[1])
    assert again["corrupted"] == got["corrupted"] and again["layers"] == [1]  # seeded noise
    with pytest.raises(ValueError, match="not in the prompt"):
        tq.causal_tracing(model, tok, CLEAN, subject="zebra")


# --- attention-pattern scores ---------------------------------------------------------------------


def test_pattern_scores_on_hand_built_patterns() -> None:
    length, start = 5, 1
    size = start + 2 * length
    patterns = torch.zeros(4, size, size)
    patterns[:, 0, 0] = 1
    for q in range(1, size):
        patterns[0, q, q - 1] = 1  # previous token
        patterns[1, q, q - length + 1 if q >= start + length else 0] = 1  # induction
        patterns[2, q, q - length if q >= start + length else 0] = 1  # duplicate token
        patterns[3, q, 0] += 0.5  # half on the first token, half on the previous one
        patterns[3, q, q - 1] += 0.5
    got = tq.pattern_scores(patterns, length, start)
    assert got["previous_token"] == pytest.approx([1, 0, 0, 0.5])
    assert got["induction"] == pytest.approx([0, 1, 0, 0])
    assert got["duplicate_token"] == pytest.approx([0, 0, 1, 0])
    with pytest.raises(ValueError, match="queries"):
        tq.pattern_scores(patterns, 6, start)


def test_head_scores_read_the_models_own_attention(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    before = model.config._attn_implementation
    got = tq.head_scores(model, tok, length=6, samples=2)
    assert model.config._attn_implementation == before
    assert set(got["scores"]) == {"previous_token", "induction", "duplicate_token"}
    for values in got["scores"].values():
        assert len(values) == 8 and all(0 <= v <= 1 for v in values.values())


# --- SAEs -----------------------------------------------------------------------------------------

CORPUS = technique_models.CORPUS


def test_sae_training_is_seeded_and_reconstructs(lm: LoadedModel) -> None:
    model, tok = lm.model, lm.tokenizer
    first = tq.train_sae(model, tok, CORPUS, layer=0, n_features=64, steps=60, seed=0)
    again = tq.train_sae(model, tok, CORPUS, layer=0, n_features=64, steps=60, seed=0)
    other = tq.train_sae(model, tok, CORPUS, layer=0, n_features=64, steps=60, seed=1, k=4)
    assert torch.equal(first["decoder"], again["decoder"])
    assert first["decoder"].shape == (64, 32) and first["encoder"].shape == (32, 64)
    assert first["stats"]["explained_variance"] > 0.5 and first["stats"]["tokens"] > 50
    assert other["kind"] == "topk" and other["stats"]["l0"] <= 4
    assert tq.sae_stability(first, again)["mean_max_cosine"] == pytest.approx(1.0, abs=1e-4)
    assert tq.sae_stability(first, other)["mean_max_cosine"] < 0.99
    encoded = tq.sae_encode(model, tok, first, "the moon is bright")
    assert encoded["features"].shape == (len(encoded["tokens"]), 64)
    acts = tq.capture_activations(model, tok, "the moon is bright", layers=0, positions=None)
    by_hand = tq.sae_features(first, acts["activations"][first["module"]])
    assert torch.allclose(encoded["features"], by_hand, atol=1e-5)


def test_sae_features_by_hand() -> None:
    """A 2-d SAE with the axes as features: codes are the ReLU of the centred inputs."""
    eye = torch.eye(2)
    sae = {"encoder": eye, "encoder_bias": torch.zeros(2), "decoder": eye,
           "decoder_bias": torch.tensor([1.0, 0.0]), "scale": 2.0, "k": None}  # fmt: skip
    codes = tq.sae_features(sae, [[1.5, -1.0], [0.0, 2.0]])
    assert torch.equal(codes, torch.tensor([[2.0, 0.0], [0.0, 4.0]]))
    assert torch.equal(tq.sae_features({**sae, "k": 1}, [[2.0, 1.0]]), torch.tensor([[3.0, 0.0]]))
    turned = {**sae, "decoder": torch.tensor([[0.0, 1.0], [math.sqrt(0.5), math.sqrt(0.5)]])}
    got = tq.sae_stability(sae, turned, threshold=0.9)
    assert got["first_to_second"] == pytest.approx((math.sqrt(0.5) + 1) / 2, abs=1e-4)
    assert got["matched"] == 0.5


# --- hooks, transport, listing --------------------------------------------------------------------


def test_hooks_are_removed_when_an_edit_fails_mid_forward(load: Any) -> None:
    loaded = load("gemma2", "float32", False)
    before = hooks(loaded.model)

    def boom(value: Any) -> Any:
        raise RuntimeError("boom")

    plan = layout(loaded.model)
    with (
        pytest.raises(RuntimeError, match="boom"),
        hooked(loaded.model, plan, heads={0: lambda z: None}, mlps={1: boom}),
        torch.no_grad(),
    ):
        loaded.model(ids_of(loaded, CLEAN))
    assert hooks(loaded.model) == before


CALLS: list[tuple[Callable[..., Any], dict[str, Any]]] = [
    (tq.head_scores, {"length": 4, "samples": 1}),
    (tq.direct_logit_attribution, {"prompt": CLEAN}),
    (tq.attribution_patching, {"clean_prompt": CLEAN, "corrupted_prompt": CORRUPTED}),
    (tq.ablate_components, {"prompts": [CLEAN], "components": ["L0H1", "mlp1"]}),
    (tq.ablation_scan, {"prompts": [CLEAN, CORRUPTED], "method": "resample"}),
    (
        tq.path_patching,
        {
            "clean_prompt": CLEAN,
            "corrupted_prompt": CORRUPTED,
            "sender": "mlp0",
            "receivers": "L1H0",
        },
    ),
    (tq.causal_tracing, {"prompt": CLEAN, "subject": "moon", "samples": 2}),
    (tq.train_sae, {"prompts": CORPUS[:3], "layer": 1, "steps": 5}),
]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_causal_techniques_travel_through_the_host_executor(arch: str, load: Any) -> None:
    loaded = load(arch, "bfloat16", False)
    executor = ModelExecutor(
        loaded.model, loaded.tokenizer, name="t", mode="local", device="cpu", dtype=loaded.dtype
    )
    before = hooks(loaded.model)
    assert {fn for fn, _ in CALLS} | {tq.sae_encode} == set(tq.CAUSAL_TECHNIQUES)
    sae = None
    for fn, kwargs in CALLS:
        payload = cloudpickle.dumps((fn, kwargs))
        assert len(payload) < 1000, "shipped by reference: the host imports the library"
        reply = executor.run(payload)
        assert reply["ok"], (fn.__name__, reply.get("error"))
        assert len(reply["value"]) < 200_000, f"{fn.__name__} returned too much"
        sae = cloudpickle.loads(reply["value"]) if fn is tq.train_sae else sae
    reply = executor.run(cloudpickle.dumps((tq.sae_encode, {"sae": sae, "prompt": CLEAN})))
    assert reply["ok"], reply.get("error")
    assert hooks(loaded.model) == before


def test_describe_lists_the_causal_techniques() -> None:
    text = tq.describe()
    for fn in tq.CAUSAL_TECHNIQUES:
        assert f"- {tq.signature(fn)}: " in text
    assert "'L1H3'" in text and "model, tokenizer" not in text.split("Helpers")[0]
