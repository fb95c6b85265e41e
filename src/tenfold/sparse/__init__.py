"""Sparse and low-rank layers: ELAS (low-rank LLaMA with squared-ReLU FFN and 2:4 activation sparsity, paper 3)."""

from tenfold.sparse.elas import (FFN_FORMS, ElasConfig, LowRankLinear, Sparse24, SquaredReLUFFN, advance, attach_warmup,
                                 build_ffn, compress_24, count_params, decompress_24, deelasify, elasify, ffn_activation_bytes,
                                 ffn_modules, ffn_width, is_gated_mlp, load_elas, mask_24, save_elas,
                                 saved_tensor_bytes, set_step, sparse24, squared_relu)

__all__ = ["FFN_FORMS", "build_ffn", "ElasConfig", "LowRankLinear", "Sparse24", "SquaredReLUFFN", "advance", "attach_warmup", "compress_24",
           "count_params", "decompress_24", "deelasify", "elasify", "ffn_activation_bytes", "ffn_modules",
           "ffn_width", "is_gated_mlp", "load_elas", "mask_24", "save_elas", "saved_tensor_bytes", "set_step",
           "sparse24", "squared_relu"]
