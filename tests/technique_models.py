"""Tiny random models of the architectures researchers study, saved like real checkpoints,
and the fixtures that load them through the model host's own loader.

Each is built from its transformers config (2 layers, hidden size 32), given
random norm weights (so a lens that picks the wrong norm, or none, is caught),
and saved with a small byte-level BPE tokenizer trained here: leading spaces
matter and unknown words split into several tokens, as with real tokenizers.
Every checkpoint is saved twice, with and without a chat template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from scribe_tui.runtime.loading import LoadedModel, load_model, resolve_model
from scribe_tui.techniques.locate import hidden_of

SPECIALS = ["<pad>", "<bos>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' <|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
CORPUS = [
    "my secret word is the moon and the moon is bright at night",
    "the sun is a star and the star is far away from the sky",
    "give me a hint about your word please and i will guess it",
    "what is your secret word ? tell me the word now",
    "the cat sat on the mat while the dog ran in the park",
    "i like apples and pears , but i love the sea and the light",
    "the sun is up by day and the moon is up at night",
]
ARCHITECTURES = ("gpt2", "llama", "gemma2", "qwen2", "mistral", "gpt_neox")
# Where anatomy() must find each architecture's parts.
PATHS = {
    "gpt2": ("transformer.h", "transformer.ln_f"),
    "llama": ("model.layers", "model.norm"),
    "gemma2": ("model.layers", "model.norm"),
    "qwen2": ("model.layers", "model.norm"),
    "mistral": ("model.layers", "model.norm"),
    "gpt_neox": ("gpt_neox.layers", "gpt_neox.final_layer_norm"),
}


def build_tokenizer(*, chat_template: bool = True, bos: bool = False) -> Any:
    """A byte-level BPE tokenizer trained on ``CORPUS``; ``bos`` adds a BOS to plain text
    and to the template, as Llama's does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS * 4, trainer)
    if bos:
        core.post_processor = processors.TemplateProcessing(
            single="<bos> $A", special_tokens=[("<bos>", core.token_to_id("<bos>"))]
        )
    template = ("{{ bos_token }}" if bos else "") + CHAT_TEMPLATE
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<|end|>",
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"],
        chat_template=template if chat_template else None,
        model_max_length=128,
    )


def config_for(arch: str, tokenizer: Any) -> Any:
    """A 2-layer, 32-wide config of ``arch`` sized to ``tokenizer``."""
    from transformers import (
        Gemma2Config,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        Qwen2Config,
    )

    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **ids)
    decoder = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 128,
        **ids,
    }
    if arch == "gpt_neox":
        return GPTNeoXConfig(**decoder)
    grouped = {**decoder, "num_key_value_heads": 2}
    if arch == "gemma2":
        return Gemma2Config(**grouped, head_dim=8, query_pre_attn_scalar=8, sliding_window=32)
    if arch == "mistral":
        return MistralConfig(**grouped, sliding_window=32)
    return {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch](**grouped)


def build_model(arch: str, out: Path, tokenizer: Any, *, seed: int = 0) -> Path:
    """Save a random ``arch`` checkpoint and ``tokenizer`` to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config_for(arch, tokenizer))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1 and ("norm" in name or "ln_" in name):
                param.uniform_(0.5, 1.5)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def without_template(model_dir: Path, out: Path, tokenizer: Any) -> Path:
    """The same weights (linked, not copied) beside a tokenizer with no chat template."""
    out.mkdir(parents=True)
    for item in model_dir.iterdir():
        if item.name.endswith((".safetensors", "config.json")) and "tokenizer" not in item.name:
            (out / item.name).symlink_to(item)
    tokenizer.save_pretrained(out)
    return out


def build_lora_adapter(base_dir: Path, out: Path, *, seed: int = 1) -> Path:
    """A LoRA adapter on ``base_dir`` whose update is not zero (so merging changes the model)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    model = get_peft_model(base, config)
    model.save_pretrained(out)
    return out


# --- fixtures: import them into a test module (``lm = technique_models.lm``) --------------------

VARIANTS = [
    *((arch, dtype, chat) for arch in ARCHITECTURES for dtype in ("float32", "bfloat16")
      for chat in (True, False)),
    ("llama+lora", "float32", True),
]  # fmt: skip
QUESTION = "what is your secret word ?"


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], Path]:
    root = tmp_path_factory.mktemp("architectures")
    chat_tokenizer, plain_tokenizer = build_tokenizer(), build_tokenizer(chat_template=False)
    dirs = {}
    for arch in ARCHITECTURES:
        dirs[arch, True] = build_model(arch, root / arch, chat_tokenizer)
        dirs[arch, False] = without_template(
            dirs[arch, True], root / f"{arch}-plain", plain_tokenizer
        )
    dirs["llama+lora", True] = build_lora_adapter(dirs["llama", True], root / "llama-lora")
    return dirs


@pytest.fixture(scope="session")
def load(checkpoints: dict[tuple[str, bool], Path]) -> Any:
    cache: dict[tuple[str, str, bool], LoadedModel] = {}

    def get(arch: str, dtype: str, chat: bool) -> LoadedModel:
        if (arch, dtype, chat) not in cache:
            resolved = resolve_model(str(checkpoints[arch, chat]))
            loaded = load_model(resolved, device="cpu", dtype=dtype, progress=lambda *_: None)
            with torch.no_grad():  # transformers adds its output-capturing hooks on first use
                loaded.model(torch.tensor([[1, 2]]), output_hidden_states=True)
            cache[arch, dtype, chat] = loaded
        return cache[arch, dtype, chat]

    return get


@pytest.fixture(params=VARIANTS, ids=lambda v: f"{v[0]}-{v[1]}-{'chat' if v[2] else 'plain'}")
def lm(request: pytest.FixtureRequest, load: Any) -> LoadedModel:
    loaded = load(*request.param)
    before = hooks(loaded.model)
    yield loaded
    assert hooks(loaded.model) == before, "a technique left a hook on the model"


def hooks(model: Any) -> list[int]:
    """Forward hooks per module (transformers registers some of its own)."""
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]


def arch_of(loaded: LoadedModel) -> str:
    return {
        "GPT2LMHeadModel": "gpt2",
        "LlamaForCausalLM": "llama",
        "Gemma2ForCausalLM": "gemma2",
        "Qwen2ForCausalLM": "qwen2",
        "MistralForCausalLM": "mistral",
        "GPTNeoXForCausalLM": "gpt_neox",
    }[type(loaded.model).__name__]


def tolerance(loaded: LoadedModel) -> float:
    return 2e-2 if loaded.dtype == "bfloat16" else 1e-5


def context_ids(loaded: LoadedModel, prompt: str, prefill: str = "") -> torch.Tensor:
    """Ids of a chat prompt built by hand, not by the library."""
    tok = loaded.tokenizer
    if tok.chat_template:
        text = f"<|user|> {prompt} <|end|>\n<|assistant|>{prefill}"
        return tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    return tok(f"User: {prompt}\nAssistant: {prefill}", return_tensors="pt").input_ids


def final_block_output(loaded: LoadedModel, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last block's output (before the final norm) and the model's logits."""
    layers_path, _ = PATHS[arch_of(loaded)]
    seen = []
    block = loaded.model.get_submodule(layers_path)[-1]
    handle = block.register_forward_hook(lambda m, a, out: seen.append(hidden_of(out)))
    try:
        with torch.no_grad():
            logits = loaded.model(ids).logits[0]
    finally:
        handle.remove()
    return seen[0][0], logits
