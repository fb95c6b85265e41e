"""MoE compression: LightMoE expert replacing (paper 9) with pruning and merging baselines, on HF MoE models."""

from tenfold.moe.lightmoe import (EARLIER_DEFAULTS, METHODS, CompressedExperts, LightMoEConfig, RecoveryConfig,
                                  add_lora, anneal_lambda, compress, compressed_experts, expert_param_count,
                                  finish_recovery, load_compressed, method_defaults, param_bytes, plan_selection,
                                  recover, save_compressed, set_anneal, swap_modules, trainable_count)
from tenfold.moe.families import REFUSED, MoELayer, SubsetRouter, find_moe_layers
from tenfold.moe.rules import base_weights, group_experts, layer_threshold_factors
from tenfold.moe.stats import LayerStats, expert_stats, moe_layers, routing_entropy, routing_histogram

__all__ = ["EARLIER_DEFAULTS", "METHODS", "REFUSED", "CompressedExperts", "LayerStats", "LightMoEConfig", "MoELayer",
           "RecoveryConfig", "SubsetRouter", "add_lora", "anneal_lambda", "base_weights", "compress",
           "compressed_experts", "expert_param_count", "expert_stats", "find_moe_layers", "finish_recovery",
           "group_experts", "layer_threshold_factors", "load_compressed", "method_defaults", "moe_layers",
           "param_bytes", "plan_selection", "recover", "routing_entropy", "routing_histogram", "save_compressed",
           "set_anneal", "swap_modules", "trainable_count"]
