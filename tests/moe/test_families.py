"""LightMoE on every supported transformers MoE family (issue 30, phase 1): detection, the family's own router
on a subset of experts, compression in fp32 and bf16, `.to()` of the blended originals, save/load, refusals.

Each family is a tiny random model (hidden 32, 4 experts, top-2, 2 layers) with its router biases
(`e_score_correction_bias`, `expert_bias`, ...) randomised: HF initialises them to zero, which hides bias bugs.
"""

import copy
import functools

import pytest
import torch

from tenfold.common.errors import UserError
from tenfold.moe import (SubsetRouter, compress, compressed_experts, expert_stats, find_moe_layers, finish_recovery,
                         load_compressed, save_compressed, swap_modules)

transformers = pytest.importorskip("transformers")

BASE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            vocab_size=128, max_position_embeddings=128, head_dim=8, pad_token_id=0, bos_token_id=1, eos_token_id=2)
MOE = dict(moe_intermediate_size=16, num_experts=4, num_experts_per_tok=2)
LOCAL = dict(num_local_experts=4, num_experts_per_tok=2)
DS = dict(moe_intermediate_size=16, n_routed_experts=4, num_experts_per_tok=2, n_group=2, topk_group=1,
          first_k_dense_replace=0, n_shared_experts=1, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8,
          qk_nope_head_dim=8, v_head_dim=8, routed_scaling_factor=2.5)

# family -> (config class, model class, config overrides, router child, group-limited)
SUPPORTED = {
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", dict(MOE, shared_expert_intermediate_size=16,
                                                                 norm_topk_prob=True), "gate"),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", MOE, "gate"),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", LOCAL, "gate"),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", dict(num_experts=4, num_experts_per_tok=2), "gate"),
    "deepseek_v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM", dict(DS, topk_method="greedy"), "gate"),
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM", DS, "gate"),
    "glm4_moe": ("Glm4MoeConfig", "Glm4MoeForCausalLM", DS, "gate"),
    "dots1": ("Dots1Config", "Dots1ForCausalLM", DS, "gate"),
    "ernie4_5_moe": ("Ernie4_5_MoeConfig", "Ernie4_5_MoeForCausalLM", dict(
        moe_intermediate_size=16, moe_num_experts=4, moe_k=2, moe_layer_start_index=0, moe_num_shared_experts=0),
        "gate"),
    "hunyuan_v1_moe": ("HunYuanMoEV1Config", "HunYuanMoEV1ForCausalLM", dict(num_experts=4, moe_topk=2), "gate"),
    "minimax_m2": ("MiniMaxM2Config", "MiniMaxM2ForCausalLM", LOCAL, "gate"),
    "lfm2_moe": ("Lfm2MoeConfig", "Lfm2MoeForCausalLM", dict(MOE, num_dense_layers=0,
                                                             layer_types=["full_attention", "conv"]), "gate"),
    "granitemoe": ("GraniteMoeConfig", "GraniteMoeForCausalLM", LOCAL, "router"),
    "jamba": ("JambaConfig", "JambaForCausalLM", dict(num_experts=4, num_experts_per_tok=2, expert_layer_period=1,
                                                      expert_layer_offset=0, attn_layer_period=2, attn_layer_offset=1,
                                                      mamba_d_state=8, mamba_dt_rank=8, mamba_expand=2), "router"),
    "phimoe": ("PhimoeConfig", "PhimoeForCausalLM", LOCAL, "router"),
    "cohere2_moe": ("Cohere2MoeConfig", "Cohere2MoeForCausalLM", MOE, "gate"),
    "minimax_m3_vl": ("MiniMaxM3VLTextConfig", "MiniMaxM3VLForCausalLM", LOCAL, "gate"),  # clamped _apply_gate
    "laguna": ("LagunaConfig", "LagunaForCausalLM", MOE, "gate"),  # config breaks AutoConfig.for_model
}
GROUPED = {"deepseek_v3", "glm4_moe", "dots1"}  # n_group=2, topk_group=1: pruning masks instead of slicing
REFUSED = {  # family -> (config class, model class, overrides, what the error names)
    "gpt_oss": ("GptOssConfig", "GptOssForCausalLM", LOCAL, "transposed"),
    "nemotron_h": ("NemotronHConfig", "NemotronHForCausalLM",
                   dict(n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=16), "up_proj only"),
    "llama4": ("Llama4TextConfig", "Llama4ForCausalLM", dict(LOCAL, num_experts_per_tok=1, intermediate_size_mlp=64,
                                                             interleave_moe_layer_step=1),
               "use_experts_implementation"),
    "muse_spark": ("MuseSparkTextConfig", "MuseSparkTextModel", MOE, "norm after each expert"),
    "deepseek_v2_group": ("DeepseekV2Config", "DeepseekV2ForCausalLM", dict(DS, topk_method="group_limited_greedy"),
                          "group-limited"),  # softmax + group limit, no bias to mask: pruning refused
}
X = torch.randint(3, 120, (2, 7), generator=torch.Generator().manual_seed(1))


@functools.lru_cache(maxsize=None)
def _built(family: str):
    c, mc, kw, *_ = {**SUPPORTED, **REFUSED}[family]
    cfg = getattr(transformers, c)(**{**BASE, **kw})
    torch.manual_seed(0)
    m = getattr(transformers, mc)(cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.2)
            elif "bias" in n:
                p.normal_(0, 0.1)
        for n, b in m.named_buffers():  # e_score_correction_bias, expert_bias, moe_statics: zero in HF
            if "bias" in n and b.is_floating_point():
                b.normal_(0, 0.1)
    return m.eval()


def _model(family: str, dtype=torch.float32):
    return copy.deepcopy(_built(family)).to(dtype)


def _routes(model, x=X):
    """(logits, weights, indices) of every router call in one forward pass, and the logits."""
    seen = []
    hooks = [l.router.register_forward_hook(lambda m, a, o: seen.append(o)) for l in find_moe_layers(model)]
    with torch.no_grad():
        out = model(input_ids=x).logits
    for h in hooks:
        h.remove()
    return seen, out


FAMILIES = sorted(SUPPORTED)
DTYPES = [torch.float32, torch.bfloat16]


@pytest.mark.parametrize("family", FAMILIES)
def test_detect(family):
    m = _model(family)
    layers = find_moe_layers(m)
    stores = [n for n, mod in m.named_modules() if n.endswith(".experts") and hasattr(mod, "gate_up_proj")]
    assert [f"{l.name}.experts" for l in layers] == stores and stores
    assert all(l.router_attr == SUPPORTED[family][3] and l.num_experts == 4 and l.top_k == 2 for l in layers)
    assert all(l.n_group == (2 if family in GROUPED else 1) for l in layers)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_router_subset_all_kept_is_exact_and_removed_never_chosen(family, dtype):
    m = _model(family, dtype)
    ref, ref_logits = _routes(m)
    layers = find_moe_layers(m)
    swap_modules(m, {f"{l.name}.{l.router_attr}": SubsetRouter(l.router, range(4), 4) for l in layers})
    got, logits = _routes(m)
    assert len(got) == len(ref) > 0
    for (a0, a1, a2), (b0, b1, b2) in zip(ref, got):
        assert torch.equal(a0, b0) and torch.equal(a1, b1) and torch.equal(a2, b2)
    assert torch.equal(logits, ref_logits)
    # one expert per group removed from every layer: never chosen, logits -inf there
    m = _model(family, dtype)
    kept, mode = ([0, 1], "mask") if family in GROUPED else ([0, 2, 3], "slice")
    swap_modules(m, {f"{l.name}.{l.router_attr}": SubsetRouter(l.router, kept, 4, mode)
                     for l in find_moe_layers(m)})
    got, logits = _routes(m, torch.randint(3, 120, (4, 16), generator=torch.Generator().manual_seed(2)))
    for lg, w, idx in got:
        assert set(idx.flatten().tolist()) <= set(kept) and torch.isinf(lg[:, [1] if mode == "slice" else [2, 3]]).all()
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_compress_forward_identity_and_save_load(family, dtype, tmp_path):
    ref = _model(family, dtype)
    _, want = _routes(ref)
    for method in ("lightmoe", "prune", "merge", "naive_replace"):
        m = _model(family, dtype)
        st = expert_stats(m, [X])
        assert st[0].freq.sum().item() == pytest.approx(2.0)
        compress(m, 0.25, method, stats=st, rank=2)
        assert all(p.dtype == dtype for n, p in m.named_parameters() if "experts" in n)
        _, logits = _routes(m)
        assert logits.dtype == want.dtype and torch.isfinite(logits).all()
        if method == "lightmoe":
            # the original experts blended in at weight 1 (lam = 0): the original model, bit for bit
            assert torch.equal(logits, want)
            finish_recovery(m)
            logits = m(input_ids=X).logits
        save_compressed(m, tmp_path / method)
        back = load_compressed(tmp_path / method)
        assert torch.equal(back(input_ids=X).logits, logits)
        assert {p.dtype for p in back.parameters()} == {p.dtype for p in m.parameters()}


@pytest.mark.parametrize("family", FAMILIES)
def test_to_bf16_moves_the_blended_originals(family):
    m = _model(family)
    compress(m, 0.5, "lightmoe", stats=expert_stats(m, [X]), rank=2)
    ce = compressed_experts(m)
    n_params = sum(p.numel() for p in m.parameters())
    assert all(c.teacher_gate_up is not None for c in ce)
    assert not any("teacher" in k for k in m.state_dict()) and not any("teacher" in n for n, _ in m.named_parameters())
    m.to(torch.bfloat16)
    assert all(c.teacher_gate_up.dtype == c.teacher_down.dtype == torch.bfloat16 for c in ce)
    assert sum(p.numel() for p in m.parameters()) == n_params
    _, got = _routes(m)
    _, want = _routes(_model(family, torch.bfloat16))
    assert torch.equal(got, want)  # cast after compressing == compressing the cast model, at lam = 0


@pytest.mark.parametrize("family", sorted(REFUSED))
def test_unsupported_families_are_refused_before_any_work(family):
    m = _model(family)
    what = REFUSED[family][3]
    before = copy.deepcopy(m.state_dict())
    with pytest.raises(UserError, match=what):
        if family == "deepseek_v2_group":
            compress(m, 0.25, "prune", stats=expert_stats(m, [X]))
        else:
            expert_stats(m, [X])
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    if family != "deepseek_v2_group":
        with pytest.raises(UserError, match="Unsupported MoE family"):
            find_moe_layers(m)
