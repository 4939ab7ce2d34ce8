"""Where the parts of a causal LM live, whatever its architecture.

GPT-2 keeps its blocks in ``transformer.h`` and its final norm in ``transformer.ln_f``;
Llama, Gemma, Qwen and Mistral in ``model.layers`` and ``model.norm``; GPT-NeoX in
``gpt_neox.layers`` and ``gpt_neox.final_layer_norm``. Techniques ask :func:`anatomy`
instead of hard-coding one of them. Known paths come first; anything else is found
by shape (the ModuleList with one entry per layer, the norm beside it), so most
other decoder-only models work too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_LAYER_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")
_NORM_PATHS = (
    "model.norm",
    "transformer.ln_f",
    "gpt_neox.final_layer_norm",
    "model.final_layernorm",
    "model.decoder.final_layer_norm",
)


@dataclass(frozen=True)
class Anatomy:
    """The decoder blocks, the final norm and the unembedding of one model."""

    layers: list[Any]  # the decoder blocks, first to last
    layers_path: str  # e.g. "model.layers"; block i is f"{layers_path}.{i}"
    final_norm: Any | None  # None: the model has none (the lens then skips it)
    norm_path: str | None
    unembedding: Any  # the output embedding (lm_head)
    logit_softcap: float | None  # Gemma 2 squashes logits with tanh; the lens must too


def unwrap(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (the model itself otherwise)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def anatomy(model: Any) -> Anatomy:
    """Locate the decoder blocks, final norm and unembedding of ``model``."""
    import torch

    model = unwrap(model)
    layers_path = next((p for p in _LAYER_PATHS if _get(model, p) is not None), None)
    if layers_path is None:
        lists = [
            (name, module)
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.ModuleList) and len(module) > 0
        ]
        if not lists:
            raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")
        layers_path = max(lists, key=lambda item: len(item[1]))[0]
    norm_path = next((p for p in _NORM_PATHS if _get(model, p) is not None), None)
    if norm_path is None:
        norm_path = _norm_beside(model, layers_path)
    unembedding = model.get_output_embeddings()
    if unembedding is None:
        raise ValueError(f"{type(model).__name__} has no output embedding to decode with")
    return Anatomy(
        layers=list(_get(model, layers_path)),
        layers_path=layers_path,
        final_norm=_get(model, norm_path) if norm_path else None,
        norm_path=norm_path,
        unembedding=unembedding,
        logit_softcap=getattr(model.config, "final_logit_softcapping", None),
    )


def decode_residual(parts: Anatomy, hidden: Any, *, normed: bool = False) -> Any:
    """Logits from residual-stream vectors, as the model's own head would compute them.

    ``normed``: the vectors already went through the final norm (transformers'
    last ``hidden_states`` entry does); normalising twice would distort them.
    """
    import torch

    weight = parts.unembedding.weight
    hidden = hidden.to(weight.dtype)
    if not normed and parts.final_norm is not None:
        hidden = parts.final_norm(hidden)
    logits = parts.unembedding(hidden).float()
    if parts.logit_softcap:
        logits = torch.tanh(logits / parts.logit_softcap) * parts.logit_softcap
    return logits


def resolve_layers(parts: Anatomy, layers: list[int] | int | None) -> list[int]:
    """Layer indices (negative ones count from the end); None means every layer."""
    count = len(parts.layers)
    if layers is None:
        return list(range(count))
    chosen = [layers] if isinstance(layers, int) else list(layers)
    resolved = []
    for layer in chosen:
        if not -count <= int(layer) < count:
            raise IndexError(f"layer {layer} is out of range: the model has {count} layers")
        resolved.append(int(layer) % count)
    return resolved


def find_module(model: Any, name: str) -> Any:
    """A submodule by its dotted name (as ``model.named_modules()`` spells it)."""
    model = unwrap(model)
    module = _get(model, name)
    if module is None:
        sample = [n for n, _ in model.named_modules() if n][:8]
        raise KeyError(f"no module named {name!r}; names look like: {', '.join(sample)}")
    return module


def hidden_of(output: Any) -> Any:
    """The hidden-state tensor in a module's output (blocks return a tensor or a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def with_hidden(output: Any, hidden: Any) -> Any:
    """``output`` with its hidden-state tensor replaced, keeping its structure."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _get(root: Any, path: str) -> Any:
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _norm_beside(model: Any, layers_path: str) -> str | None:
    """A norm among the siblings of the layer list (where decoder stacks keep it)."""
    parent_path = layers_path.rpartition(".")[0]
    parent = _get(model, parent_path) if parent_path else model
    for name, child in parent.named_children():
        if "norm" in type(child).__name__.lower() or name in ("ln_f", "norm"):
            return f"{parent_path}.{name}" if parent_path else name
    return None
