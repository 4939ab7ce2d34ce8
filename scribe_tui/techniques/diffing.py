"""Model diffing: what fine-tuning changed, against the base checkpoint.

The base model lives in the host beside the tuned one (``client.run_base``), so a
diff takes two calls: measure the base, then hand its result to the tuned model::

    base = client.run_base(next_token_logprobs, prompts=prompts)
    diff = client.run(diff_next_token, prompts=prompts, base_logprobs=base)
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques.activations import capture_activations
from scribe_tui.techniques.probs import next_token_logprobs


def diff_next_token(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    base_logprobs: Any,
    prefill: str | list[str] = "",
    chat: bool = True,
    top_k: int = 10,
) -> dict[str, Any]:
    """Next tokens whose probability rose or fell most against the base model's.

    ``base_logprobs`` is the base model's :func:`next_token_logprobs` for the same
    prompts, prefill and ``chat``; changes are averaged over ``prompts``. Differences
    are in probability, not log-probability: 1e-9 → 1e-6 is a large
    log-ratio and no signal. Returns ``{"gains": [{"token", "token_id", "delta"}],
    "losses": [...], "kl": [KL(tuned || base) per prompt]}``.
    """
    import torch

    tuned = next_token_logprobs(model, tokenizer, prompts, prefill=prefill, chat=chat)
    base = torch.as_tensor(base_logprobs, dtype=torch.float32)
    if base.shape != tuned.shape:
        raise ValueError(
            f"base_logprobs has shape {tuple(base.shape)}, expected {tuple(tuned.shape)}: "
            "compute it with next_token_logprobs on the same prompts"
        )
    shift = (tuned.exp() - base.exp()).mean(0)
    kl = (tuned.exp() * (tuned - base)).sum(-1)
    k = min(top_k, shift.shape[0])

    def rows(values: Any, indices: Any) -> list[dict[str, Any]]:
        return [
            {"token": tokenizer.decode([int(i)]), "token_id": int(i), "delta": round(float(v), 6)}
            for v, i in zip(values, indices, strict=True)
        ]

    gains, losses = shift.topk(k), (-shift).topk(k)
    return {
        "gains": rows(gains.values, gains.indices),
        "losses": rows(-losses.values, losses.indices),
        "kl": [round(float(v), 6) for v in kl],
    }


def diff_activations(model: Any, tokenizer: Any, base: dict[str, Any]) -> dict[str, Any]:
    """How far each captured module's output moved from the base model's.

    ``base`` is the base model's :func:`capture_activations` result; the same
    modules, prompt and positions are captured here. Per module: the mean cosine
    similarity, the mean relative change ``|tuned - base| / |base|``, and the token
    where the change is largest. Returns ``{"tokens", "modules": {name: {...}}}``.
    """
    import torch

    tuned = capture_activations(
        model,
        tokenizer,
        base["prompt"],
        modules=list(base["activations"]),
        positions=base["positions"],
        chat=base["chat"],
    )
    positions = base["positions"]
    if positions is None:
        token_of = list(range(len(tuned["tokens"])))
    elif isinstance(positions, int):
        token_of = [positions]
    else:
        token_of = list(positions)
    report = {}
    for name, before in base["activations"].items():
        after = tuned["activations"][name]
        b, a = before.float().reshape(-1, before.shape[-1]), after.reshape(-1, after.shape[-1])
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        change = (a - b).norm(dim=-1) / b.norm(dim=-1).clamp(min=1e-12)
        worst = int(change.argmax())
        report[name] = {
            "cosine": round(float(cosine.mean()), 6),
            "relative_change": round(float(change.mean()), 6),
            "most_changed_token": tuned["tokens"][token_of[worst]],
            "max_relative_change": round(float(change[worst]), 6),
        }
    return {"tokens": tuned["tokens"], "modules": report}
