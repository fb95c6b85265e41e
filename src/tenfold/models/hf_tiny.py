"""Tiny models on Hugging Face config classes, built from scratch (random init), with named sizes.

`tiny_llama(size)`, `tiny_vit(size)` and `tiny_moe(size)` return (model, config). "debug" sizes run a
forward pass in milliseconds, for tests.
"""

from __future__ import annotations

LLAMA_SIZES = {  # hidden, layers, heads, kv heads, ffn
    "debug": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64),
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, intermediate_size=344),
    "small": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8, intermediate_size=688),
}
VIT_SIZES = {
    "debug": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "tiny": dict(hidden_size=96, num_hidden_layers=4, num_attention_heads=3, intermediate_size=192),
}
MOE_SIZES = {
    "debug": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2),
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                 moe_intermediate_size=128, num_experts=8, num_experts_per_tok=2),
}


def _pick(table: dict, size: str) -> dict:
    if size not in table:
        raise ValueError(f"Invalid size: {size!r}; expected one of {', '.join(table)}")
    return dict(table[size])


def tiny_llama(size: str = "tiny", vocab_size: int = 256, max_position_embeddings: int = 512, **overrides):
    """A randomly initialised `LlamaForCausalLM` of a named size (byte-level vocab by default)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, max_position_embeddings=max_position_embeddings,
                      **{"tie_word_embeddings": True, **_pick(LLAMA_SIZES, size), **overrides})
    return LlamaForCausalLM(cfg), cfg


def tiny_vit(size: str = "tiny", image_size: int = 32, patch_size: int = 4, num_channels: int = 3,
             num_labels: int = 10, **overrides):
    """A randomly initialised `ViTForImageClassification` (patch 4 on 32x32 -> 64 tokens + CLS)."""
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(image_size=image_size, patch_size=patch_size, num_channels=num_channels, num_labels=num_labels,
                    **{**_pick(VIT_SIZES, size), **overrides})
    return ViTForImageClassification(cfg), cfg


def tiny_moe(size: str = "tiny", vocab_size: int = 256, max_position_embeddings: int = 512, **overrides):
    """A randomly initialised `Qwen2MoeForCausalLM` (no shared expert) of a named size."""
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    cfg = Qwen2MoeConfig(vocab_size=vocab_size, max_position_embeddings=max_position_embeddings,
                         shared_expert_intermediate_size=0, intermediate_size=128, tie_word_embeddings=True,
                         **{**_pick(MOE_SIZES, size), **overrides})
    return Qwen2MoeForCausalLM(cfg), cfg
