"""TAP-GPT (paper 8, arXiv 2507.23227 / 2603.17191): tabular prompts, feature ranking, LoRA tuning and the
few-shot LLM classifier. See docs/tapgpt.md. peft and transformers are imported only when a model is built."""

from tenfold.tabular.prompts import (
    HEADER, MASK, NA_REP, STYLES, aligned_table, build_prompt, build_prompt_parts, instruction, mcar, parse_label,
    sample_shots, serialize_table,
)
from tenfold.tabular.tapgpt import MODELS, TAPGPTClassifier, load_backbone, rank_features, split_pool

__all__ = [
    "TAPGPTClassifier", "load_backbone", "rank_features", "split_pool", "MODELS", "build_prompt", "build_prompt_parts",
    "aligned_table", "instruction", "mcar", "parse_label", "sample_shots", "serialize_table", "HEADER", "MASK",
    "NA_REP", "STYLES",
]
