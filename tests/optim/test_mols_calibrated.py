"""The calibrated MoLS (the paper's form as far as its sources go): AdamW during calibration, the SNR estimator and
the multiplier map against naive references, AdamW-with-type-LRs afterwards, user param groups and schedulers,
HF-family name rules, resume, errors, HF Trainer. DDP: tests/optim/test_mols.py::test_ddp_two_ranks_identical_scales."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from tenfold.common.errors import UserError
from tenfold.optim import MoLS, calibration_snr, module_type, snr_multipliers


class _LM(nn.Module):
    """Embedding (Zipf-distributed tokens: sparse, noisy rows), attention-like projections, MLP and head."""

    def __init__(self, vocab=200, d=16):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.q_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        h = self.embed_tokens(ids)
        h = h + self.v_proj(h) * torch.sigmoid(self.q_proj(h))
        return self.lm_head(self.norm(h + self.mlp(h)))


def _batches(n, vocab=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = 1.0 / torch.arange(1, vocab + 1).float()
    return [torch.multinomial(p / p.sum(), 64, replacement=True, generator=g) for _ in range(n)]


def _loss(model, ids):
    return nn.functional.cross_entropy(model(ids[:-1]), ids[1:])


def _train(model, opt, batches, sched=None):
    for ids in batches:
        opt.zero_grad()
        _loss(model, ids).backward()
        opt.step()
        if sched is not None:
            sched.step()


# ---- maths ------------------------------------------------------------------------------------------------
def test_calibration_snr_matches_a_naive_estimate():
    torch.manual_seed(0)
    mu, sigma, k = torch.randn(50), 2.0, 400
    gs = mu + sigma * torch.randn(k, 50)
    m = gs.mean(0)
    snr, signal, noise = calibration_snr(float(m.square().sum()), float(gs.square().sum(1).mean()), k)
    naive_noise = float(((gs - m) ** 2).sum(1).sum() / (k - 1))
    assert noise == pytest.approx(naive_noise, rel=1e-5)
    assert signal == pytest.approx(float(mu.square().sum()), rel=0.1)  # E‖m‖² − noise/K is unbiased for ‖μ‖²
    assert snr == pytest.approx(float(mu.square().sum()) / (50 * sigma ** 2), rel=0.1)
    with pytest.raises(UserError, match="calibration_steps"):
        calibration_snr(1.0, 2.0, 1)


@pytest.mark.parametrize("reference,expect", [
    ("least_noisy", {"embed": 3.0, "mlp": 1.0, "head": math.sqrt(5) / math.sqrt(1.25)}),
    ("mlp", {"embed": 3.0, "mlp": 1.0, "head": math.sqrt(5) / math.sqrt(1.25)}),
])
def test_snr_multipliers_table(reference, expect):
    # raw (1+s)/s)^0.5: embed s=1/8 -> 3, mlp s=4 -> sqrt(1.25), head s=1/4 -> sqrt(5); normalised to mlp (the least
    # noisy type, and the "mlp" reference alike)
    snrs = {"embed": 1 / 8, "mlp": 4.0, "head": 0.25}
    got = snr_multipliers(snrs, {"embed": 10, "mlp": 10, "head": 10}, reference=reference)
    assert got["embed"] == pytest.approx(3.0 / math.sqrt(1.25)) and got["mlp"] == pytest.approx(1.0)
    assert got["head"] == pytest.approx(expect["head"])
    clipped = snr_multipliers({"embed": 0.0, "mlp": 4.0}, {"embed": 1, "mlp": 1}, max_multiplier=10)
    assert clipped["embed"] == 10.0 and clipped["mlp"] == 1.0
    geo = snr_multipliers(snrs, {"embed": 1, "mlp": 1, "head": 1}, reference="geomean")
    assert math.prod(geo.values()) == pytest.approx(1.0)
    with pytest.raises(UserError, match="reference"):
        snr_multipliers(snrs, {}, reference="median")


@pytest.mark.parametrize("name,kind", [
    ("model.embed_tokens.weight", "embed"), ("model.layers.3.self_attn.q_proj.weight", "qk"),
    ("model.layers.3.self_attn.k_proj.bias", "qk"), ("model.layers.3.self_attn.v_proj.weight", "vo"),
    ("model.layers.3.self_attn.o_proj.weight", "vo"), ("model.layers.3.mlp.gate_proj.weight", "mlp"),
    ("model.layers.3.input_layernorm.weight", "other"), ("model.norm.weight", "other"), ("lm_head.weight", "head"),
    # GPT-2: fused QKV counts as QK; the attention's c_proj is VO, the MLP's is MLP
    ("transformer.wte.weight", "embed"), ("transformer.wpe.weight", "embed"), ("transformer.h.0.attn.c_attn.weight", "qk"),
    ("transformer.h.0.attn.c_proj.weight", "vo"), ("transformer.h.0.mlp.c_fc.weight", "mlp"),
    ("transformer.h.0.mlp.c_proj.weight", "mlp"), ("transformer.ln_f.weight", "other"),
    # OPT
    ("model.decoder.embed_positions.weight", "embed"), ("model.decoder.layers.0.self_attn.out_proj.weight", "vo"),
    ("model.decoder.layers.0.fc1.weight", "mlp"), ("model.decoder.layers.0.self_attn_layer_norm.weight", "other"),
    # BERT (case-insensitive LayerNorm; attention output before the MLP's output.dense)
    ("bert.encoder.layer.0.attention.self.query.weight", "qk"), ("bert.encoder.layer.0.attention.self.value.bias", "vo"),
    ("bert.encoder.layer.0.attention.output.dense.weight", "vo"), ("bert.encoder.layer.0.output.dense.weight", "mlp"),
    ("bert.encoder.layer.0.attention.output.LayerNorm.weight", "other"), ("bert.embeddings.word_embeddings.weight", "embed"),
])
def test_module_type_rules_cover_common_hf_families(name, kind):
    assert module_type(name) == kind


def test_real_hf_models_get_every_type():
    import transformers as tf

    small = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1)
    models = [tf.LlamaForCausalLM(tf.LlamaConfig(**small, tie_word_embeddings=False)),
              tf.Qwen2ForCausalLM(tf.Qwen2Config(**small, tie_word_embeddings=False)),
              tf.MistralForCausalLM(tf.MistralConfig(**small, tie_word_embeddings=False)),
              tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2))]
    for m in models:
        opt = MoLS(m.named_parameters(), calibration_steps=2)
        kinds = {opt.type_of(p) for p in m.parameters()}
        want = {"embed", "qk", "vo", "mlp", "other"} | ({"head"} if not m.config.tie_word_embeddings else set())
        assert kinds == want, type(m).__name__


# ---- the step -------------------------------------------------------------------------------------------------
def test_calibration_phase_is_adamw_and_afterwards_adamw_with_type_lrs():
    torch.manual_seed(0)
    model = _LM()
    ref = copy.deepcopy(model)
    batches = _batches(8)
    opt = MoLS(model.named_parameters(), lr=1e-2, weight_decay=0.1, calibration_steps=4)
    adamw = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1)
    _train(model, opt, batches[:4])
    _train(ref, adamw, batches[:4])
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)  # the calibration steps are AdamW, bit for bit
    assert not opt.calibrating and opt.multipliers["embed"] > 1.0 and opt.multipliers["other"] == 1.0
    # afterwards: AdamW whose groups carry lr x the type's multiplier (torch's kernel on each bucket)
    groups = {}
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        groups.setdefault(opt.multipliers[opt.type_of(p)], []).append(q)
    state = adamw.state_dict()
    by_id = {id(q): i for i, q in enumerate(ref.parameters())}
    adamw2 = torch.optim.AdamW([{"params": ps, "lr": 1e-2 * m} for m, ps in groups.items()], lr=1e-2,
                               weight_decay=0.1)
    for ps in groups.values():
        for q in ps:
            adamw2.state[q] = copy.deepcopy(adamw.state[q])
    del state, by_id
    _train(model, opt, batches[4:])
    _train(ref, adamw2, batches[4:])
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_noisy_types_are_raised():
    """The method's premise at toy scale: rare-token embedding rows and head rows get noisy gradients, so their
    multipliers exceed the MLP's (the least noisy here)."""
    torch.manual_seed(0)
    model = _LM(vocab=400)
    opt = MoLS(model.named_parameters(), lr=3e-3, calibration_steps=20)
    _train(model, opt, _batches(20, vocab=400))
    assert opt.snrs["embed"] < opt.snrs["mlp"] and opt.multipliers["embed"] > opt.multipliers["mlp"]
    assert min(v for k, v in opt.multipliers.items() if k != "other") == pytest.approx(1.0)


def test_user_param_groups_and_per_group_schedulers_stay_the_users():
    torch.manual_seed(0)
    model = _LM()
    decay = [(n, p) for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [(n, p) for n, p in model.named_parameters() if p.dim() < 2]
    opt = MoLS([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0, "lr": 5e-3}], lr=1e-2,
               calibration_steps=3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [lambda s: 1.0 / (1 + s), lambda s: 0.5])
    _train(model, opt, _batches(6), sched)
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == pytest.approx(2.5e-3)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 7) and opt.param_groups[0]["weight_decay"] == 0.1
    assert opt.param_groups[0]["param_names"] == [n for n, _ in decay]


def test_resume_is_bit_identical_mid_calibration_and_after(tmp_path):
    batches = _batches(10)

    def make():
        torch.manual_seed(0)
        m = _LM()
        return m, MoLS(m.named_parameters(), lr=1e-2, calibration_steps=5)

    for cut in (3, 7):  # inside the calibration window, and after it
        m, o = make()
        _train(m, o, batches[:cut])
        torch.save({"m": m.state_dict(), "o": o.state_dict()}, tmp_path / "ck.pt")
        _train(m, o, batches[cut:])
        m2, o2 = make()
        ck = torch.load(tmp_path / "ck.pt", weights_only=False)
        m2.load_state_dict(ck["m"]); o2.load_state_dict(ck["o"])
        _train(m2, o2, batches[cut:])
        assert o.multipliers == o2.multipliers
        for a, b in zip(m.parameters(), m2.parameters()):
            assert torch.equal(a, b), cut


def test_errors():
    model = _LM()
    with pytest.raises(UserError, match="names"):
        MoLS(model.parameters())
    with pytest.raises(UserError, match="calibration_steps"):
        MoLS(model.named_parameters(), calibration_steps=1)
    with pytest.raises(UserError, match="reference"):
        MoLS(model.named_parameters(), reference="median")
    with pytest.raises(UserError, match="types"):
        MoLS(model.named_parameters(), types=("embed", "conv"))
    with pytest.raises(UserError, match="max_multiplier"):
        MoLS(model.named_parameters(), max_multiplier=0.5)
    opt = MoLS(model.named_parameters(), calibration_steps=2)
    with pytest.raises(UserError, match="names"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))]})


def test_bf16_model_runs():
    torch.manual_seed(0)
    model = _LM().to(torch.bfloat16)
    opt = MoLS(model.named_parameters(), lr=1e-2, calibration_steps=2)
    _train(model, opt, _batches(4))
    assert all(torch.isfinite(p).all() and p.dtype == torch.bfloat16 for p in model.parameters())


def test_hf_trainer_example(tmp_path):
    pytest.importorskip("accelerate")
    from transformers import Trainer, TrainingArguments, get_cosine_schedule_with_warmup

    from tenfold.models.hf_tiny import tiny_llama

    model, _ = tiny_llama("debug", tie_word_embeddings=False)
    data = [{"input_ids": torch.randint(0, 256, (16,))} for _ in range(16)]
    for d in data:
        d["labels"] = d["input_ids"]
    opt = MoLS(model.named_parameters(), lr=3e-3, calibration_steps=4)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=8)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=2,
                             report_to=[], logging_steps=4, save_strategy="no", use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=data, optimizers=(opt, sched)).train()
    assert set(opt.multipliers) == {"embed", "qk", "vo", "mlp", "head", "other"}


def test_readme_example_runs():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    block = next(b for b in re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
                 if "from tenfold.optim import MoLS" in b)
    scope: dict = {}
    exec(compile(block, "<readme>", "exec"), scope)  # noqa: S102 - our own documentation
    assert set(scope["opt"].multipliers) == {"embed", "qk", "vo", "mlp", "head", "other"}


def test_galore_groups_calibrate_as_galore_adamw_then_scale():
    """A group with "rank" runs GaLoreAdamW's update: during calibration bit-equal to galore_torch's optimizer,
    afterwards equal to GaLoreAdamW groups at lr x the type multiplier. (Only the projected matrices train here,
    so both optimizers see the same gradients.)"""
    from galore_torch import GaLoreAdamW

    torch.manual_seed(0)
    model = _LM()
    ref = copy.deepcopy(model)
    batches = _batches(7)
    gal = dict(rank=4, update_proj_gap=3, scale=0.25, proj_type="std")

    def mats(m):
        out = [(n, p) for n, p in m.named_parameters() if p.dim() == 2 and ("proj" in n or "mlp" in n)]
        ids = {id(p) for _, p in out}
        for p in m.parameters():
            p.requires_grad_(id(p) in ids)
        return out

    opt = MoLS([{"params": mats(model), **gal}], lr=1e-2, eps=1e-6, weight_decay=0.0, calibration_steps=3)
    ref_mats = mats(ref)
    galore = GaLoreAdamW([{"params": [p for _, p in ref_mats], **gal}], lr=1e-2, weight_decay=0.0,
                         no_deprecation_warning=True)
    _train(model, opt, batches[:3])
    _train(ref, galore, batches[:3])
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    assert not opt.calibrating and set(opt.multipliers) == {"qk", "vo", "mlp", "other"}
    by_mult: dict[float, list] = {}
    for (_, p), (_, q) in zip(mats(model), ref_mats):
        by_mult.setdefault(opt.multipliers[opt.type_of(p)], []).append(q)
    galore2 = GaLoreAdamW([{"params": ps, "lr": 1e-2 * m, **gal} for m, ps in by_mult.items()], lr=1e-2,
                          weight_decay=0.0, no_deprecation_warning=True)
    for ps in by_mult.values():
        for q in ps:
            galore2.state[q] = copy.deepcopy(galore.state[q])
    _train(model, opt, batches[3:])
    _train(ref, galore2, batches[3:])
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_edge_snrs_give_finite_multipliers():
    inf = float("inf")
    # noiseless (SNR inf) -> raw 1, the least noisy; mlp's raw sqrt(1.25) relative to it
    assert snr_multipliers({"embed": inf, "mlp": 4.0}, {"embed": 1, "mlp": 1}) == {
        "embed": 1.0, "mlp": pytest.approx(math.sqrt(1.25))}
    assert snr_multipliers({"embed": 0.0, "mlp": 0.0}, {"embed": 1, "mlp": 1}) == {"embed": 1.0, "mlp": 1.0}
    assert snr_multipliers({"embed": float("nan"), "mlp": 2.0}, {"embed": 1, "mlp": 1}) == {"mlp": 1.0}
    # a type whose gradients are exactly zero (noise 0): training stays finite
    torch.manual_seed(0)
    model = _LM()
    model.q_proj.weight.register_hook(lambda g: torch.zeros_like(g))
    opt = MoLS(model.named_parameters(), lr=1e-2, calibration_steps=3)
    _train(model, opt, _batches(5))
    assert all(math.isfinite(v) for v in opt.multipliers.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_grad_scaler_inf_steps_are_not_counted():
    """Under torch.amp.GradScaler a step with inf gradients is skipped by AdamW, and by the calibration sums."""
    torch.manual_seed(0)
    model = _LM()
    opt = MoLS(model.named_parameters(), lr=1e-2, calibration_steps=4, fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)

    def run(batches, inf_at):
        for i, ids in enumerate(batches):
            opt.zero_grad()
            loss = _loss(model, ids) * (float("inf") if i == inf_at else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    batches = _batches(5)
    run(batches[:4], inf_at=1)  # 4 steps, one of them inf: 3 counted, still calibrating
    assert opt.calibrating and opt._count == 3
    run(batches[4:], inf_at=-1)  # the 4th counted step ends the calibration
    assert not opt.calibrating
    assert all(math.isfinite(v) for v in opt.snrs.values()) and all(math.isfinite(v) for v in opt.multipliers.values())


def test_unmatched_names_and_generators():
    net = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(UserError, match="no parameter name matches"):
        MoLS(net.named_parameters())
    model = _LM()
    opt = MoLS(list(model.named_parameters())[:3], calibration_steps=2)
    opt.add_param_group({"params": (x for x in list(model.named_parameters())[3:])})  # a generator is fine
    assert len(opt.param_groups) == 2
    assert module_type("model.layers.0.self_attn.qkv_proj.weight") == "qk"  # Phi-3's fused QKV


def test_docs_example_runs():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    block = next(b for b in re.findall(r"```python\n(.*?)```", (root / "docs" / "mols.md").read_text(), re.S)
                 if "from tenfold.optim import MoLS" in b)
    scope: dict = {}
    exec(compile(block, "<docs/mols.md>", "exec"), scope)  # noqa: S102 - our own documentation
    opt = scope["opt"]
    assert set(opt.multipliers) == {"embed", "qk", "vo", "mlp", "head", "other"} and opt.multipliers["head"] >= 1.0
    assert len(opt.param_groups) == 2  # the user's two groups, as passed


def test_galore_group_resumes_bit_identically(tmp_path):
    """A GaLore group's state loads into a fresh MoLS (torch's load_state_dict needs a "step" key) and the run
    continues exactly as without the interruption."""
    pytest.importorskip("galore_torch")

    def make():
        torch.manual_seed(0)
        net = torch.nn.ModuleDict({"embed": torch.nn.Embedding(30, 16), "mlp": torch.nn.Linear(16, 16),
                                   "head": torch.nn.Linear(16, 30)})
        named = list(net.named_parameters())
        low = [(n, p) for n, p in named if n == "mlp.weight"]
        rest = [(n, p) for n, p in named if n != "mlp.weight"]
        opt = MoLS([{"params": rest}, {"params": low, "rank": 4, "update_proj_gap": 3, "scale": 0.25,
                                        "proj_type": "std"}], lr=1e-2, calibration_steps=3)
        return net, opt

    def step(net, opt, i):
        g = torch.Generator().manual_seed(i)
        ids = torch.randint(0, 30, (8,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net["head"](torch.relu(net["mlp"](net["embed"](ids)))), ids).backward()
        opt.step()

    net, opt = make()
    for i in range(10):
        step(net, opt, i)
    ref = [p.detach().clone() for p in net.parameters()]
    net, opt = make()
    for i in range(5):
        step(net, opt, i)
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, tmp_path / "ck.pt")
    ck = torch.load(tmp_path / "ck.pt", weights_only=False)
    net2, opt2 = make()
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["opt"])
    for i in range(5, 10):
        step(net2, opt2, i)
    assert all(torch.equal(a, b) for a, b in zip(ref, net2.parameters()))
