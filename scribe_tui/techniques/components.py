"""Attention heads and MLPs as named components, and the hooks the causal techniques share.

A head is ``"L1H3"`` (layer 1, head 3) and an MLP ``"mlp2"``; layers count from 0.
A head's activation is its slice of the attention output *before* the output
projection (``o_proj``, GPT-2's ``c_proj``, NeoX's ``dense``), where the heads sit
side by side, so editing one head is a forward pre-hook on that projection. An
MLP's activation is the MLP module's output. What a component *writes* into the
residual stream is that output through the projection, and for Gemma 2 through the
norm it applies to each sublayer's output before adding it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from scribe_tui.techniques import prompting
from scribe_tui.techniques.locate import anatomy, hidden_of, unwrap, with_hidden

_COMPONENT = re.compile(r"^\s*(?:l(\d+)h(\d+)|mlp(\d+))\s*$", re.IGNORECASE)
_ATTENTION = ("self_attn", "attn", "attention")
_OUT_PROJ = ("o_proj", "c_proj", "dense", "out_proj")
_MLP = ("mlp", "feed_forward")


@dataclass(frozen=True, order=True)
class Component:
    """One attention head (``head`` set) or one layer's MLP (``head`` None)."""

    layer: int
    head: int | None = None

    def __str__(self) -> str:
        return f"mlp{self.layer}" if self.head is None else f"L{self.layer}H{self.head}"


def parse_component(name: str) -> Component:
    """``"L1H3"`` -> head 3 of layer 1; ``"mlp2"`` -> layer 2's MLP (case-insensitive)."""
    match = _COMPONENT.match(str(name))
    if match is None:
        raise ValueError(f"{name!r} is not a component: write heads as 'L1H3' and MLPs as 'mlp2'")
    layer, head, mlp = match.groups()
    return Component(int(mlp)) if mlp is not None else Component(int(layer), int(head))


def format_components(components: list[Component]) -> list[str]:
    """Component names, in layer order, heads before the layer's MLP."""
    return [str(c) for c in sorted(components, key=lambda c: (c.layer, c.head is None, c.head))]


@dataclass(frozen=True)
class Block:
    """The parts of one decoder block that the causal techniques hook."""

    attention: Any
    out_proj: Any  # its input holds the heads side by side
    mlp: Any
    attn_post_norm: Any | None  # Gemma 2 norms each sublayer's output before adding it
    mlp_post_norm: Any | None

    @property
    def attn_write(self) -> Any:
        """The module whose output the attention sublayer adds to the residual."""
        return self.attn_post_norm or self.attention

    @property
    def mlp_write(self) -> Any:
        """The module whose output the MLP sublayer adds to the residual."""
        return self.mlp_post_norm or self.mlp


@dataclass(frozen=True)
class Layout:
    """A model's blocks, head count and component names."""

    blocks: list[Block]
    n_heads: int

    def all(self) -> list[Component]:
        """Every head and MLP, in layer order."""
        return [
            Component(layer, head)
            for layer in range(len(self.blocks))
            for head in [*range(self.n_heads), None]
        ]

    def resolve(self, names: str | list[str] | None) -> list[Component]:
        """Components by name (None: all), checked against the model's size."""
        if names is None:
            return self.all()
        chosen = [parse_component(n) for n in ([names] if isinstance(names, str) else names)]
        for c in chosen:
            if not 0 <= c.layer < len(self.blocks) or not 0 <= (c.head or 0) < self.n_heads:
                raise IndexError(
                    f"{c} is out of range: {len(self.blocks)} layers of {self.n_heads} heads"
                )
        return list(dict.fromkeys(chosen))


def layout(model: Any) -> Layout:
    """Find every block's attention, output projection, MLP and (Gemma 2) post-norms."""
    blocks = []
    for index, block in enumerate(anatomy(model).layers):
        attention = _child(block, _ATTENTION, index)
        sandwich = hasattr(block, "post_feedforward_layernorm")
        blocks.append(
            Block(
                attention=attention,
                out_proj=_child(attention, _OUT_PROJ, index),
                mlp=_child(block, _MLP, index),
                attn_post_norm=block.post_attention_layernorm if sandwich else None,
                mlp_post_norm=block.post_feedforward_layernorm if sandwich else None,
            )
        )
    config = unwrap(model).config
    n_heads = getattr(config, "num_attention_heads", None) or config.n_head
    return Layout(blocks=blocks, n_heads=int(n_heads))


def _child(module: Any, names: tuple[str, ...], index: int) -> Any:
    for name in names:
        child = getattr(module, name, None)
        if child is not None:
            return child
    raise ValueError(f"block {index}: none of {', '.join(names)} in {type(module).__name__}")


# --- hooks ----------------------------------------------------------------------------------------

Edit = Callable[[Any], Any]  # gets an activation, returns its replacement (None: unchanged)


@contextmanager
def hooked(
    model: Any,
    plan: Layout,
    *,
    heads: dict[int, Edit] | None = None,
    mlps: dict[int, Edit] | None = None,
    attn_writes: dict[int, Edit] | None = None,
    mlp_writes: dict[int, Edit] | None = None,
    block_inputs: dict[int, Edit] | None = None,
    attentions: dict[int, Edit] | None = None,
    outputs: list[tuple[Any, Edit]] | None = None,
) -> Iterator[None]:
    """Hooks that pass activations through edit functions, removed on exit (also on error).

    ``heads[layer]`` gets that layer's heads as ``[batch, pos, heads, head_dim]``;
    ``mlps``, ``attn_writes``, ``mlp_writes``, ``attentions`` get module outputs
    ``[batch, pos, dim]``; ``block_inputs`` gets the residual entering a block;
    ``outputs`` pairs any module with an edit of its output.
    """
    handles = []
    n_heads = plan.n_heads

    def pre(edit: Edit, split: bool) -> Callable[..., Any]:
        def hook(module: Any, args: Any, kwargs: Any) -> Any:
            value = args[0] if args else kwargs["hidden_states"]
            shape = value.shape
            new = edit(
                value.reshape(*shape[:-1], n_heads, shape[-1] // n_heads) if split else value
            )
            if new is None:
                return None
            new = new.reshape(shape)
            if args:
                return (new, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": new}

        return hook

    def post(edit: Edit) -> Callable[..., Any]:
        def hook(module: Any, args: Any, output: Any) -> Any:
            new = edit(hidden_of(output))
            return None if new is None else with_hidden(output, new)

        return hook

    blocks = anatomy(model).layers
    try:
        for layer, edit in (heads or {}).items():
            handles.append(
                plan.blocks[layer].out_proj.register_forward_pre_hook(
                    pre(edit, True), with_kwargs=True
                )
            )
        for layer, edit in (block_inputs or {}).items():
            handles.append(
                blocks[layer].register_forward_pre_hook(pre(edit, False), with_kwargs=True)
            )
        for edits, module_of in (
            (mlps, lambda b: b.mlp),
            (attn_writes, lambda b: b.attn_write),
            (mlp_writes, lambda b: b.mlp_write),
            (attentions, lambda b: b.attention),
        ):
            for layer, edit in (edits or {}).items():
                handles.append(module_of(plan.blocks[layer]).register_forward_hook(post(edit)))
        for module, edit in outputs or []:
            handles.append(module.register_forward_hook(post(edit)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def capture(model: Any, plan: Layout, ids: Any, *, writes: bool = False) -> dict[str, list[Any]]:
    """One clean forward pass: every layer's heads ``[batch, pos, heads, head_dim]`` and MLP
    outputs (and with ``writes``, what each sublayer adds to the residual), detached."""
    import torch

    n = len(plan.blocks)
    store: dict[str, list[Any]] = {k: [None] * n for k in ("heads", "mlps", "attn", "mlp")}

    def keep(kind: str, layer: int) -> Edit:
        def edit(value: Any) -> None:
            store[kind][layer] = value.detach().clone()

        return edit

    spans = {
        "heads": {i: keep("heads", i) for i in range(n)},
        "mlps": {i: keep("mlps", i) for i in range(n)},
    }
    if writes:
        spans["attn_writes"] = {i: keep("attn", i) for i in range(n)}
        spans["mlp_writes"] = {i: keep("mlp", i) for i in range(n)}
    with hooked(model, plan, **spans), torch.no_grad():
        model(ids)
    return store


def replacing(plan: Layout, values: dict[Component, Any]) -> dict[str, dict[int, Edit]]:
    """Edits for :func:`hooked` that set each component's activation to the given tensor
    (a head: ``[pos, head_dim]`` or ``[head_dim]``; an MLP: ``[pos, dim]`` or ``[dim]``)."""
    heads: dict[int, dict[int, Any]] = {}
    mlps: dict[int, Any] = {}
    for component, value in values.items():
        if component.head is None:
            mlps[component.layer] = value
        else:
            heads.setdefault(component.layer, {})[component.head] = value

    def head_edit(chosen: dict[int, Any]) -> Edit:
        def edit(z: Any) -> Any:
            z = z.clone()
            for head, value in chosen.items():
                z[:, :, head] = value.to(z.device, z.dtype)
            return z

        return edit

    def mlp_edit(value: Any) -> Edit:
        def edit(out: Any) -> Any:
            return value.to(out.device, out.dtype).expand_as(out).clone()

        return edit

    return {
        "heads": {layer: head_edit(chosen) for layer, chosen in heads.items()},
        "mlps": {layer: mlp_edit(value) for layer, value in mlps.items()},
    }


@contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Switch to eager attention (fused kernels return no weights) and back afterwards."""
    config = model.config
    before = getattr(config, "_attn_implementation", None)
    switch = getattr(model, "set_attn_implementation", None)

    def set_to(value: str) -> None:
        if callable(switch):
            switch(value)
        else:  # older transformers read the config at every forward
            config._attn_implementation = value

    changed = before not in ("eager", None)
    if changed:
        set_to("eager")
    try:
        yield
    finally:
        if changed:
            set_to(before)


# --- norms ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrozenNorm:
    """A LayerNorm or RMSNorm with its per-token scale frozen at one run's value: linear.

    ``apply(v)`` is ``centre(v) * multiplier`` (``centre``: LayerNorm subtracts the
    mean); the norm's own output is ``apply(x) + bias`` for the input it was frozen at.
    """

    multiplier: Any  # float32 [pos, dim]: the weight times each token's 1/rms
    centre: bool
    bias: Any  # float32 [dim]

    def apply(self, v: Any) -> Any:
        v = v.float()
        if self.centre:
            v = v - v.mean(-1, keepdim=True)
        return v * self.multiplier


def freeze_norm(norm: Any, x: Any) -> FrozenNorm:
    """Freeze ``norm`` at input ``x`` ``[pos, dim]``."""
    import torch

    x = x.float()
    if isinstance(norm, torch.nn.LayerNorm):
        dim = x.shape[-1]
        weight = norm.weight.detach().float() if norm.weight is not None else torch.ones(dim)
        bias = norm.bias.detach().float() if norm.bias is not None else torch.zeros(dim)
        scale = (x.var(-1, unbiased=False, keepdim=True) + norm.eps).rsqrt()
        return FrozenNorm(scale * weight.to(x.device), True, bias.to(x.device))
    # An RMSNorm of any flavour (Gemma's 1 + weight included) is y = x * weight / rms(x):
    # its effective weight is its output on a large constant vector (rms = that constant,
    # eps negligible), and each token's 1/rms is the least-squares fit of y to weight * x.
    with torch.no_grad():
        weight = norm(torch.full((1, x.shape[-1]), 1e3, device=x.device)).float()[0] / 1e3
        y = norm(x).float()
    scaled = x * weight
    scale = (y * scaled).sum(-1, keepdim=True) / (scaled * scaled).sum(-1, keepdim=True)
    return FrozenNorm(scale * weight, False, torch.zeros_like(weight))


# --- prompts and metrics --------------------------------------------------------------------------


def token_id(tokenizer: Any, word: str) -> int:
    """The first token of ``word`` as it follows other text (as activation_patching reads it)."""
    from scribe_tui.techniques.interventions import _first_token

    return _first_token(tokenizer, word)


def as_list(value: Any, n: int, what: str) -> list[Any]:
    """One value per prompt: a single value repeated, or a list of exactly ``n``."""
    if value is None or isinstance(value, str):
        return [value] * n
    if len(value) != n:
        raise ValueError(f"{len(value)} {what} for {n} prompts")
    return list(value)


def encode_all(model: Any, tokenizer: Any, prompts: str | list[str], chat: bool) -> list[Any]:
    """Ids ``[1, n]`` of each prompt."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("no prompts")
    return [prompting.context_ids(model, tokenizer, p, "", chat) for p in prompts]


METRICS = ("logprob", "logit")


def score(logits: Any, position: int, target: int, foil: int | None, metric: str) -> Any:
    """The metric at ``position`` of each batch row: the target's log-probability (or
    logit), minus the foil's when given."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    row = logits[:, position].float()
    if metric == "logprob":
        row = row.log_softmax(-1)
    value = row[:, target]
    return value - row[:, foil] if foil is not None else value
