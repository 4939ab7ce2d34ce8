"""What model is loaded: architecture, sizes, dtype, tokenizer, and where its parts are."""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques.locate import anatomy, unwrap


def get_model_info(model: Any, tokenizer: Any) -> dict[str, Any]:
    """Architecture, sizes, dtype, tokenizer, PEFT adapter, and where the blocks and
    final norm are.

    The paths (``layers_path``, ``final_norm``) are what hooks need. The model's name is
    always redacted: a checkpoint's name can give a secret away.
    """
    peft_config = getattr(model, "peft_config", None)
    is_peft = bool(peft_config) and unwrap(model) is not model
    config = unwrap(model).config
    parts = anatomy(model)
    first = next(model.parameters())
    peft_info = None
    if is_peft:
        adapter = next(iter(peft_config.values()))
        peft_info = {
            "peft_type": str(adapter.peft_type),
            "r": getattr(adapter, "r", None),
            "lora_alpha": getattr(adapter, "lora_alpha", None),
            "target_modules": sorted(getattr(adapter, "target_modules", None) or []),
        }
    dtype = getattr(config, "dtype", None) or config.to_dict().get("torch_dtype")
    return {
        "model_name": "Base Model + PEFT Adapter [redacted]" if is_peft else "Model [redacted]",
        "architecture": (config.architectures or [config.model_type])[0],
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "num_layers": getattr(config, "num_hidden_layers", getattr(config, "n_layer", None)),
        "hidden_size": getattr(config, "hidden_size", getattr(config, "n_embd", None)),
        "vocab_size": getattr(config, "vocab_size", None),
        "max_position_embeddings": getattr(
            config, "max_position_embeddings", getattr(config, "n_positions", None)
        ),
        "device": str(first.device),
        "dtype": str(first.dtype),
        "is_peft": is_peft,
        "peft_info": peft_info,
        "tokenizer_info": {
            "vocab_size": len(tokenizer),
            "model_max_length": tokenizer.model_max_length,
            "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "pad_token": tokenizer.pad_token,
            "eos_token": tokenizer.eos_token,
            "bos_token": tokenizer.bos_token,
        },
        "config_summary": {
            "model_type": config.model_type,
            "torch_dtype": str(dtype) if dtype is not None else None,
            "architectures": config.architectures,
        },
        "layers_path": parts.layers_path,
        "final_norm": parts.norm_path,
    }
