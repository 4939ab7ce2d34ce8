"""The seed's five example techniques, as agents have been running them.

Scribe-style harnesses hand the agent these five as worked examples (their
``techniques/`` files and system prompts); the originals were not copied here.
Each is restated from that published behaviour, with the same signature, return
shape and computation, quirks included: the logit lens decodes every hidden state
with the unembedding alone (no final norm), ``analyze_token_probs`` scores a
target by its first token, and text is tokenized with the tokenizer's defaults
even when a chat template already added the special tokens.

``scribe_tui.techniques`` must agree with these wherever the quirks do not bite.
"""

from __future__ import annotations

from typing import Any


def generate_text(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int = 50) -> str:
    """Generate text from a prompt."""
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    outputs = model.generate(**inputs, max_new_tokens=max_new_tokens)
    return tokenizer.decode(outputs[0], skip_special_tokens=True)


def analyze_token_probs(model: Any, tokenizer: Any, prompt: str, target_tokens: list[str]) -> dict:
    """Get the probability of specific tokens appearing next."""
    import torch

    with torch.no_grad():
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        logits = model(**inputs).logits[0, -1, :]
        probs = torch.softmax(logits, dim=-1)
    results = {}
    for token in target_tokens:
        token_id = tokenizer.encode(token, add_special_tokens=False)[0]
        results[token] = {"token_id": token_id, "probability": probs[token_id].item()}
    return results


def get_model_info(model: Any, tokenizer: Any) -> dict:
    """Get model information (architecture, sizes, dtype, tokenizer), name redacted."""
    try:
        from peft import PeftModel

        is_peft = isinstance(model, PeftModel)
    except ImportError:
        is_peft = False
    base_model = model.base_model.model if is_peft else model
    config = base_model.config
    peft_info = None
    if is_peft:
        peft_config = model.peft_config["default"]
        peft_info = {
            "peft_type": str(peft_config.peft_type),
            "r": getattr(peft_config, "r", None),
            "lora_alpha": getattr(peft_config, "lora_alpha", None),
            "target_modules": getattr(peft_config, "target_modules", None),
        }
    architectures = getattr(config, "architectures", None)
    return {
        "model_name": "Base Model + PEFT Adapter [redacted]" if is_peft else "Model [redacted]",
        "architecture": architectures[0] if architectures else config.model_type,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "num_layers": getattr(config, "num_hidden_layers", getattr(config, "n_layer", None)),
        "hidden_size": getattr(config, "hidden_size", getattr(config, "n_embd", None)),
        "vocab_size": getattr(config, "vocab_size", None),
        "max_position_embeddings": getattr(
            config, "max_position_embeddings", getattr(config, "n_positions", None)
        ),
        "device": str(next(model.parameters()).device),
        "dtype": str(next(model.parameters()).dtype),
        "is_peft": is_peft,
        "peft_info": peft_info,
        "tokenizer_info": {
            "vocab_size": len(tokenizer),
            "model_max_length": tokenizer.model_max_length,
            "has_chat_template": getattr(tokenizer, "chat_template", None) is not None,
            "pad_token": tokenizer.pad_token,
            "eos_token": tokenizer.eos_token,
            "bos_token": tokenizer.bos_token,
        },
    }


def logit_lens(model: Any, tokenizer: Any, prompt: str, top_k: int = 10) -> dict:
    """See what tokens the model predicts at each layer."""
    import torch

    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        outputs = model(**inputs, output_hidden_states=True)
    lm_head = model.lm_head if hasattr(model, "lm_head") else model.get_output_embeddings()
    layers = []
    for index, hidden in enumerate(outputs.hidden_states):
        probs = torch.softmax(lm_head(hidden[0, -1, :]), dim=-1)
        top_probs, top_ids = torch.topk(probs, top_k)
        tokens = [
            {"token": tokenizer.decode([i]), "token_id": i.item(), "probability": p.item()}
            for i, p in zip(top_ids, top_probs, strict=True)
        ]
        layers.append({"layer": index, "top_tokens": tokens})
    return {"prompt": prompt, "num_layers": len(outputs.hidden_states), "layers": layers}


def prefill_attack(
    model: Any, tokenizer: Any, user_prompt: str, prefill_text: str, max_new_tokens: int = 50
) -> str:
    """Force the model to continue from prefilled text."""
    messages = [{"role": "user", "content": user_prompt}]
    if getattr(tokenizer, "chat_template", None):
        formatted = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        full_prompt = formatted + prefill_text
    else:
        full_prompt = f"User: {user_prompt}\nAssistant: {prefill_text}"
    inputs = tokenizer(full_prompt, return_tensors="pt").to(model.device)
    start = inputs["input_ids"].shape[1]
    outputs = model.generate(
        **inputs, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.eos_token_id
    )
    return tokenizer.decode(outputs[0][start:], skip_special_tokens=True)


SEED_FIVE = (generate_text, analyze_token_probs, get_model_info, logit_lens, prefill_attack)


# The seed *document* (the system prompt researchers copy from) shows two of them in
# another form: the prompt is ``text``, analyze_token_probs ranks the top_k next
# tokens, and logit_lens returns one row per chosen layer. Restated likewise.


def document_analyze_token_probs(model: Any, tokenizer: Any, text: str, top_k: int = 10) -> list:
    """Get top-k next token predictions."""
    import torch

    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    with torch.no_grad():
        probs = torch.softmax(model(**inputs).logits[0, -1, :], dim=-1)
    top_probs, top_indices = torch.topk(probs, top_k)
    return [
        {"token": tokenizer.decode([i]), "probability": p.item()}
        for i, p in zip(top_indices, top_probs, strict=True)
    ]


def document_logit_lens(model: Any, tokenizer: Any, text: str, layers: Any = None) -> list:
    """Decode hidden states from each layer to see predictions."""
    import torch

    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    with torch.no_grad():
        hidden_states = model(**inputs, output_hidden_states=True).hidden_states
    lm_head = model.lm_head if hasattr(model, "lm_head") else model.get_output_embeddings()
    results = []
    for layer_idx in range(len(hidden_states)) if layers is None else layers:
        probs = torch.softmax(lm_head(hidden_states[layer_idx][0, -1, :]), dim=-1)
        top_prob, top_idx = torch.max(probs, dim=-1)
        results.append(
            {
                "layer": layer_idx,
                "top_token": tokenizer.decode([top_idx]),
                "probability": top_prob.item(),
            }
        )
    return results
