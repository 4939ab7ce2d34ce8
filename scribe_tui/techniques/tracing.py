"""Causal tracing (noise, then restore) and path patching between two components.

Causal tracing follows Meng et al. (ROME): Gaussian noise on the subject tokens'
embeddings spoils the prediction; restoring one (layer, position) state from the
clean run shows how much of it that state carries.

Path patching here is the standard simplified form (Wang et al., IOI): the sender's
activation takes its corrupted-prompt value, and that change reaches the receivers'
*inputs* by the direct residual path only, every component between them frozen at
its clean value. Because the residual stream is a sum, the receivers then read the
clean residual plus the sender's change in what it writes; their resulting outputs
are patched into an otherwise clean run, where everything after them recomputes.
The receiver ``"logits"`` takes the sender's change straight to the final residual
(its direct effect).
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques import prompting
from scribe_tui.techniques.components import (
    Component,
    capture,
    encode_all,
    hooked,
    layout,
    replacing,
    score,
    token_id,
)
from scribe_tui.techniques.locate import anatomy, resolve_layers, unwrap

KINDS = ("hidden", "mlp", "attn")


def causal_tracing(
    model: Any,
    tokenizer: Any,
    prompt: str,
    subject: str | list[int],
    target: str | None = None,
    kind: str = "hidden",
    noise: float = 3.0,
    samples: int = 8,
    window: int = 1,
    layers: list[int] | None = None,
    seed: int = 0,
    chat: bool = False,
) -> dict[str, Any]:
    """Causal tracing: noise ``subject``'s token embeddings, restore each (layer, position)
    from the clean run, and read ``target``'s probability (where the fact is recalled).

    ``subject``: text in the prompt (its last occurrence) or token positions. The noise
    is Gaussian, ``noise`` times the standard deviation of the embeddings, one draw per
    sample (``samples`` seeded draws, averaged). ``kind`` restores block outputs
    (``"hidden"``), MLP outputs (``"mlp"``) or attention outputs (``"attn"``), at
    ``window`` adjacent layers centred on each one (Meng et al. use 10 for MLP and
    attention). ``target`` None: the clean top token. Returns ``{"tokens",
    "subject_positions", "target_token", "kind", "clean", "corrupted", "layers",
    "scores": [[probability per position] per layer], "restored": [[share of the
    clean-minus-corrupted gap recovered] per layer]}``.
    """
    import torch

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    plan, parts = layout(model), anatomy(model)
    ids = encode_all(model, tokenizer, prompt, chat)[0]
    length = ids.shape[1]
    positions = _subject_positions(tokenizer, prompt, subject, chat, length)
    store: dict[int, Any] = {}

    def keeper(layer: int) -> Any:
        def edit(value: Any) -> None:
            store[layer] = value.detach()[0]

        return edit

    chosen = resolve_layers(parts, layers)
    n = len(plan.blocks)
    edits = _restore_points(plan, parts, kind, {i: keeper(i) for i in range(n)})
    with hooked(model, plan, **edits), torch.no_grad():
        clean_logits = model(ids).logits
    target_id = int(clean_logits[0, -1].argmax()) if target is None else token_id(tokenizer, target)
    clean = float(clean_logits[0, -1].float().softmax(-1)[target_id])

    embed = unwrap(model).get_input_embeddings()
    generator = torch.Generator().manual_seed(seed)
    sample_ids = torch.linspace(0, embed.weight.shape[0] - 1, 4096).long().unique()
    with torch.no_grad():
        spread = float(embed(sample_ids.to(embed.weight.device)).float().std())
    draws = torch.randn(samples, len(positions), embed.weight.shape[1], generator=generator)
    draws = draws * noise * spread

    def add_noise(value: Any) -> Any:
        value = value.clone()
        value[:, positions] += draws.to(value.device, value.dtype)
        return value

    batch = ids.repeat(samples, 1)

    def probability(restore: dict[int, Any]) -> float:
        noised = [(embed, add_noise)]
        edits = _restore_points(plan, parts, kind, restore, noised)
        with hooked(model, plan, **edits), torch.no_grad():
            logits = model(batch).logits
        return float(logits[:, -1].float().softmax(-1)[:, target_id].mean())

    def restorer(layer: int, position: int) -> Any:
        def edit(value: Any) -> Any:
            value = value.clone()
            value[:, position] = store[layer][position].to(value.dtype)
            return value

        return edit

    corrupted = probability({})
    gap = clean - corrupted
    scores, restored = [], []
    for layer in chosen:
        span = range(max(0, layer - window // 2), min(n, layer - window // 2 + window))
        row = [probability({i: restorer(i, pos) for i in span}) for pos in range(length)]
        scores.append([round(p, 6) for p in row])
        restored.append([round((p - corrupted) / gap, 4) if abs(gap) > 1e-9 else 0.0 for p in row])
    return {
        "tokens": [tokenizer.decode([int(t)]) for t in ids[0]],
        "subject_positions": positions,
        "target_token": tokenizer.decode([target_id]),
        "kind": kind,
        "clean": round(clean, 6),
        "corrupted": round(corrupted, 6),
        "layers": chosen,
        "scores": scores,
        "restored": restored,
    }


def _restore_points(
    plan: Any, parts: Any, kind: str, edits: dict[int, Any], extra: list[Any] | None = None
) -> dict[str, Any]:
    """:func:`hooked` arguments that pass ``kind``'s activation of each layer through its edit."""
    if kind == "mlp":
        return {"mlps": edits, "outputs": extra}
    if kind == "attn":
        return {"attentions": edits, "outputs": extra}
    return {"outputs": [(parts.layers[i], edit) for i, edit in edits.items()] + (extra or [])}


def _subject_positions(
    tokenizer: Any, prompt: str, subject: str | list[int], chat: bool, length: int
) -> list[int]:
    """Token positions of ``subject`` (text: the tokens overlapping its last occurrence)."""
    if not isinstance(subject, str):
        positions = sorted({int(p) % length for p in subject})
    else:
        text = prompting.context_text(tokenizer, prompt, "", chat)
        start = text.rfind(subject)
        if start < 0 or not subject:
            raise ValueError(f"subject {subject!r} is not in the prompt")
        end = start + len(subject)
        offsets = tokenizer(
            text,
            return_offsets_mapping=True,
            add_special_tokens=not prompting.is_templated(tokenizer, chat),
        )["offset_mapping"]
        positions = [i for i, (a, b) in enumerate(offsets) if a < end and b > start and b > a]
    if not positions:
        raise ValueError(f"no tokens for subject {subject!r}")
    return positions


def path_patching(
    model: Any,
    tokenizer: Any,
    clean_prompt: str,
    corrupted_prompt: str,
    sender: str,
    receivers: str | list[str],
    target: str | None = None,
    foil: str | None = None,
    position: int = -1,
    metric: str = "logprob",
    chat: bool = False,
) -> dict[str, Any]:
    """The metric change when ``sender``'s corrupted activation reaches ``receivers``
    (``"L2H1"``, ``"mlp3"``, or ``"logits"``) by the direct path only.

    Components between them stay clean (the module docstring gives the form); every
    receiver sits in a later layer than the sender. The prompts must have equal token
    counts; the metric is as in :func:`~scribe_tui.techniques.ablate_components`.
    Returns ``{"sender", "receivers", "target_token", "foil_token", "clean",
    "corrupted", "patched", "effect"}`` (``effect``: patched minus clean).
    """
    import torch

    plan, parts = layout(model), anatomy(model)
    source = plan.resolve(sender)[0]
    names = [receivers] if isinstance(receivers, str) else list(receivers)
    to_logits = any(r.strip().lower() == "logits" for r in names)
    targets = plan.resolve([r for r in names if r.strip().lower() != "logits"])
    if not targets and not to_logits:
        raise ValueError("no receivers")
    if any(t.layer <= source.layer for t in targets):
        raise ValueError(f"every receiver must sit in a layer after the sender's ({source})")
    clean_ids, corrupted_ids = encode_all(model, tokenizer, [clean_prompt, corrupted_prompt], chat)
    if clean_ids.shape[1] != corrupted_ids.shape[1]:
        raise ValueError(
            f"path patching needs prompts of equal length "
            f"({clean_ids.shape[1]} vs {corrupted_ids.shape[1]} tokens)"
        )
    clean_acts = capture(model, plan, clean_ids, writes=True)
    corrupted_acts = capture(model, plan, corrupted_ids)
    write = "attn" if source.head is not None else "mlp"

    # 1. The change in what the sender's sublayer writes when the sender alone is corrupted.
    written: dict[str, Any] = {}
    patched_sender = _value(corrupted_acts, source)

    def keep_write(value: Any) -> None:
        written["value"] = value.detach()

    with (
        hooked(
            model,
            plan,
            **replacing(plan, {source: patched_sender}),
            **{f"{write}_writes": {source.layer: keep_write}},
        ),
        torch.no_grad(),
    ):
        model(clean_ids)
    delta = written["value"] - clean_acts[write][source.layer]

    # 2. Each receiver's activation with the clean residual plus that change as its input;
    # a receiving MLP reads its own layer's attention output as it was on the clean run.
    received: dict[Component, Any] = {}
    for layer in sorted({t.layer for t in targets}):
        store = _received(model, plan, clean_ids, layer, delta, clean_acts["attn"][layer])
        received.update({t: _value(store, t) for t in targets if t.layer == layer})

    # 3. The clean run with the receivers' activations patched in.
    extra = []
    if to_logits:
        extra.append((parts.layers[-1], lambda value: value + delta.to(value.dtype)))
    with torch.no_grad():
        clean_logits = model(clean_ids).logits
        target_id = (
            int(clean_logits[0, position].argmax())
            if target is None
            else token_id(tokenizer, target)
        )
        foil_id = token_id(tokenizer, foil) if foil is not None else None
        with hooked(model, plan, **replacing(plan, received), outputs=extra):
            patched_logits = model(clean_ids).logits
        corrupted_logits = model(corrupted_ids).logits
    clean, patched, corrupted = (
        float(score(lg, position, target_id, foil_id, metric)[0])
        for lg in (clean_logits, patched_logits, corrupted_logits)
    )
    return {
        "sender": str(source),
        "receivers": [str(t) for t in targets] + (["logits"] if to_logits else []),
        "target_token": tokenizer.decode([target_id]),
        "foil_token": tokenizer.decode([foil_id]) if foil_id is not None else None,
        "clean": round(clean, 6),
        "corrupted": round(corrupted, 6),
        "patched": round(patched, 6),
        "effect": round(patched - clean, 6),
    }


def _received(
    model: Any, plan: Any, ids: Any, layer: int, delta: Any, clean_attn: Any
) -> dict[str, list[Any]]:
    """Layer ``layer``'s heads and MLP output when ``delta`` is added to the residual
    entering it, with that layer's attention write held at ``clean_attn`` (so that a
    receiving MLP sees the change by the direct path only)."""
    import torch

    store: dict[str, list[Any]] = {
        "heads": [None] * len(plan.blocks),
        "mlps": [None] * len(plan.blocks),
    }

    def keep(kind: str) -> Any:
        def edit(value: Any) -> None:
            store[kind][layer] = value.detach().clone()

        return edit

    with (
        hooked(
            model,
            plan,
            heads={layer: keep("heads")},
            mlps={layer: keep("mlps")},
            block_inputs={layer: lambda value: value + delta.to(value.dtype)},
            attn_writes={layer: lambda value: clean_attn.to(value.dtype)},
        ),
        torch.no_grad(),
    ):
        model(ids)
    return store


def _value(acts: dict[str, list[Any]], component: Component) -> Any:
    """A component's activation from :func:`capture`'s store, without the batch axis."""
    if component.head is None:
        return acts["mlps"][component.layer][0]
    return acts["heads"][component.layer][0][:, component.head]
