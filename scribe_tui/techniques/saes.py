"""Sparse autoencoders: train one on captured activations, encode with it, compare two.

A small trainer lives here rather than ``sae-lens``: sae-lens imports TransformerLens
at import time and requires it (with wandb, datasets, pandas, plotly and nltk), loads
its language model itself by name (its HF path wraps a fresh ``from_pretrained``, not
the model this host already holds, whose checkpoint the kernel may not even see),
streams training tokens from a Hub dataset, and its pretrained SAEs download from
the Hub: none of it works offline on our models. What an investigation needs is a
seeded, seconds-long fit on the activations of a handful of prompts.

The SAE: ``f = act((x * scale - b_dec) @ W_enc + b_enc)``, ``x_hat = (f @ W_dec +
b_dec) / scale``, with unit-norm decoder rows; ``act`` is a ReLU (L1 penalty) or,
with ``k``, a ReLU of the ``k`` largest pre-activations (TopK). ``scale`` makes the
mean activation norm sqrt(dim), so one L1 coefficient suits any model.
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques.activations import run_capturing
from scribe_tui.techniques.components import encode_all
from scribe_tui.techniques.locate import anatomy, resolve_layers

MAX_WEIGHTS = 1 << 24  # per matrix: 64 MB of float32 comes back to the notebook


def train_sae(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    layer: int,
    n_features: int | None = None,
    k: int | None = None,
    l1: float = 1e-2,
    steps: int = 400,
    lr: float = 3e-3,
    batch_size: int = 256,
    seed: int = 0,
    module: str | None = None,
    chat: bool = False,
) -> dict[str, Any]:
    """Train a sparse autoencoder on block ``layer``'s outputs (or ``module``'s) at every
    non-special token of ``prompts``; deterministic for a given ``seed``.

    ``n_features`` defaults to 4 x the width; ``k`` switches from ReLU + L1 (``l1``) to
    TopK. Returns the SAE as plain data: ``{"module", "kind", "k", "l1", "seed",
    "scale", "encoder" [dim, features], "encoder_bias", "decoder" [features, dim],
    "decoder_bias", "stats": {"tokens", "mse", "explained_variance", "l0",
    "dead_features"}}``; pass it to :func:`sae_encode`, :func:`sae_features`,
    :func:`sae_stability`.
    """
    import torch

    parts = anatomy(model)
    name = module or f"{parts.layers_path}.{resolve_layers(parts, layer)[0]}"
    special = set(tokenizer.all_special_ids)
    rows = []
    for ids in encode_all(model, tokenizer, prompts, chat):
        keep = torch.tensor([int(t) not in special for t in ids[0]])
        rows.append(run_capturing(model, ids, [name])[name][0][keep.to(ids.device)].float())
    x = torch.cat(rows)
    dim = x.shape[1]
    features = n_features or 4 * dim
    if features * dim > MAX_WEIGHTS:
        raise ValueError(f"{features} features x {dim} dims is over {MAX_WEIGHTS} weights")
    if k is not None and not 0 < k <= features:
        raise ValueError(f"k must be in 1..{features}")
    scale = float(dim**0.5 / x.norm(dim=-1).mean())
    data = x * scale
    generator = torch.Generator().manual_seed(seed)
    decoder = torch.randn(features, dim, generator=generator).to(data.device)
    decoder /= decoder.norm(dim=-1, keepdim=True)
    sae = {
        "encoder": decoder.T.clone(),
        "encoder_bias": torch.zeros(features, device=data.device),
        "decoder": decoder,
        "decoder_bias": data.mean(0),
    }
    params = [t.requires_grad_() for t in sae.values()]
    optimiser = torch.optim.Adam(params, lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            batch = data[torch.randint(len(data), (batch_size,), generator=generator)]
            codes = _encode(sae, batch, k)
            reconstruction = codes @ sae["decoder"] + sae["decoder_bias"]
            loss = (reconstruction - batch).pow(2).sum(-1).mean() / dim
            if k is None:
                loss = loss + l1 * codes.sum(-1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():  # unit decoder rows: the L1 penalty cannot shrink them away
                sae["decoder"] /= sae["decoder"].norm(dim=-1, keepdim=True)
    result = {key: value.detach().float().cpu() for key, value in sae.items()}
    result.update(
        module=name, kind="topk" if k else "relu", k=k, l1=None if k else l1, seed=seed, scale=scale
    )
    with torch.no_grad():
        codes = sae_features(result, x.cpu())
        error = (codes @ result["decoder"] + result["decoder_bias"]) / scale - x.cpu()
        variance = (x.cpu() - x.cpu().mean(0)).pow(2).sum()
        result["stats"] = {
            "tokens": len(x),
            "mse": round(float(error.pow(2).mean()), 6),
            "explained_variance": round(float(1 - error.pow(2).sum() / variance), 4),
            "l0": round(float((codes > 0).sum(-1).float().mean()), 3),
            "dead_features": int((codes.amax(0) <= 0).sum()),
        }
    return result


def _encode(sae: dict[str, Any], scaled: Any, k: int | None) -> Any:
    """Feature activations of already-scaled inputs."""
    import torch

    pre = (scaled - sae["decoder_bias"]) @ sae["encoder"] + sae["encoder_bias"]
    if k is None:
        return torch.relu(pre)
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))


def sae_features(sae: dict[str, Any], activations: Any) -> Any:
    """Feature activations ``[n, features]`` of activations ``[n, dim]`` (or ``[dim]``)
    under an SAE from :func:`train_sae`; runs anywhere, no model needed."""
    import torch

    x = torch.as_tensor(activations).float()
    return _encode(sae, x.reshape(-1, x.shape[-1]) * sae["scale"], sae["k"])


def sae_encode(
    model: Any,
    tokenizer: Any,
    sae: dict[str, Any],
    prompt: str,
    top_k: int = 5,
    chat: bool = False,
) -> dict[str, Any]:
    """Encode ``prompt``'s activations at the SAE's module: each token's strongest features.

    Returns ``{"tokens", "features": float32 [tokens, features], "top": [[[feature,
    activation], ...] per token]}`` (``top``: the ``top_k`` active features of each).
    """
    ids = encode_all(model, tokenizer, prompt, chat)[0]
    captured = run_capturing(model, ids, [sae["module"]])[sae["module"]][0].float().cpu()
    codes = sae_features(sae, captured)
    top = []
    for row in codes:
        values, indices = row.topk(min(top_k, row.shape[0]))
        top.append(
            [[int(i), round(float(v), 4)] for v, i in zip(values, indices, strict=True) if v > 0]
        )
    return {"tokens": [tokenizer.decode([int(t)]) for t in ids[0]], "features": codes, "top": top}


def sae_stability(
    first: dict[str, Any], second: dict[str, Any], threshold: float = 0.7
) -> dict[str, Any]:
    """How far two SAEs (two seeds, say) found the same features: each decoder direction's
    highest cosine with any of the other's.

    Returns ``{"mean_max_cosine"`` (both ways, averaged), ``"first_to_second",
    "second_to_first", "matched"`` (share of the first's features whose best match is
    over ``threshold``)``}``.
    """
    import torch

    a = torch.nn.functional.normalize(torch.as_tensor(first["decoder"]).float(), dim=-1)
    b = torch.nn.functional.normalize(torch.as_tensor(second["decoder"]).float(), dim=-1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the SAEs read different widths ({a.shape[1]} vs {b.shape[1]})")
    cosine = a @ b.T
    forward, backward = cosine.amax(1), cosine.amax(0)
    return {
        "mean_max_cosine": round(float((forward.mean() + backward.mean()) / 2), 4),
        "first_to_second": round(float(forward.mean()), 4),
        "second_to_first": round(float(backward.mean()), 4),
        "matched": round(float((forward > threshold).float().mean()), 4),
    }
