"""The AdaLeZO reproduction (issue 25): the polarity task, the cached-lower-blocks model against the full model, a
smoke run validated against the schema, resume, the cross-unit speed-ups, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tenfold.common.errors import UserError
from tenfold.experiments.adalezo import EXPERIMENT, LABEL_WORDS, PROMPT, _derive, _polarity_splits
from tenfold.harness.runner import resolve_config, run_experiment
from tenfold.harness.schema import validate_results
from tenfold.zo import model_arms

PAPER = {"number": 4, "title": "AdaLeZO", "arxiv": "2604.18264"}


def _smollm2_or_skip():
    from tenfold.data.cache import MissingDataError
    from tenfold.models import pretrained

    try:
        return pretrained.smollm2()
    except (MissingDataError, ImportError) as e:
        pytest.skip(f"SmolLM2 not installed: {e}")


def test_movie_review_polarity_drops_the_neutral_band():
    from tenfold.data.text import movie_review_snippets

    pool = movie_review_snippets()
    assert 9000 < len(pool) < 10605 and {y for _, y in pool} == {0, 1}
    assert abs(sum(y for _, y in pool) / len(pool) - 0.5) < 0.05          # about balanced, as SST-2
    assert len(movie_review_snippets(neutral=0.0)) > len(pool)
    with pytest.raises(ValueError, match="Invalid neutral"):
        movie_review_snippets(neutral=5)


def test_polarity_splits_are_balanced_disjoint_and_short():
    from tenfold.models.pretrained import smollm2_tokenizer

    _smollm2_or_skip()
    cfg = resolve_config(EXPERIMENT, "smoke")
    sp = _polarity_splits(cfg)
    assert [len(sp[s][0]) for s in ("train", "dev", "test")] == [cfg.n_train, cfg.n_dev, cfg.n_test]
    assert torch.bincount(sp["train"][1]).tolist() == [cfg.n_train // 2] * 2
    assert not set(sp["train"][0]) & set(sp["test"][0])
    tok = smollm2_tokenizer()
    assert all(p.endswith(PROMPT.format("")) and len(tok(p)["input_ids"]) <= cfg.max_tokens for p in sp["dev"][0])
    with pytest.raises(UserError, match="Invalid sizes"):
        _polarity_splits(resolve_config(EXPERIMENT, "smoke", ["n_train=100000"]))


def test_top_blocks_on_cached_states_equal_the_full_model(tmp_path):
    """The label-word logits from cached lower-block states + the adapted top blocks are the full model's logits at
    each prompt's last token (right padding under the causal mask leaves real positions exact)."""
    import tenfold.experiments.adalezo as mod

    lm, tok = _smollm2_or_skip()
    lm.eval()
    prompts = [PROMPT.format(s) for s in ("A gorgeous, witty film.", "Dull and far too long.", "Meh.")]
    label_ids = [tok(w)["input_ids"][0] for w in LABEL_WORDS]
    top = 3
    states = mod._lower_states(lm, tok, prompts, len(lm.model.layers) - top)
    model = mod.TopBlocksLM(lm, top, label_ids)
    with torch.no_grad():
        got = model(mod._pad_states(states))
        want = torch.stack([lm(**tok(p, return_tensors="pt")).logits[0, -1, label_ids] for p in prompts])
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
    assert [a["name"] for a in model_arms(model)] == ["block0", "block1", "block2", "rest"]
    with pytest.raises(UserError, match="Invalid top_blocks"):
        mod.TopBlocksLM(lm, 31, label_ids)


def test_smoke_run_validates_resumes_and_tunes_with_tune_steps(tmp_path, monkeypatch):
    """One smoke run (this is also the conformance smoke run for adalezo): schema, verdicts, per-arm metrics, the
    length of every tuning run (tune_steps) and of the timed-only reference arm, and a second call that reuses every
    finished unit."""
    import tenfold.experiments.adalezo as mod

    _smollm2_or_skip()
    seen = []
    real = mod._train

    def spy(spec, cfg, seed, split, cache_dir, ctx=None, ckpt=None, steps=None, device=None):
        seen.append((seed, spec["kind"], steps))
        return real(spec, cfg, seed, split, cache_dir, ctx, ckpt, steps, device)

    monkeypatch.setattr(mod, "_train", spy)
    path = run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False, overrides=["tune_steps=3"])
    validate_results(path)
    res = json.loads(path.read_text())
    assert res["status"] == "complete" and {c["verdict"] for c in res["claims"]} == {"inconclusive"}
    arms = {a["name"]: a for a in res["arms"]}
    assert all(a["mean"] for a in res["arms"])
    assert arms["mezo_fast"]["mean"]["touched_fraction"] == pytest.approx(1.0)
    assert arms["adalezo"]["mean"]["touched_fraction"] < 1.0 and "probs" in arms["adalezo"]["extra"]["0"]
    assert arms["mezo_ref"]["mean"].get("test_acc") is None           # timed only: no quality numbers
    assert arms["mezo_ref"]["mean"]["step_ms"] > 0
    assert {s for seed, _, s in seen if seed == mod.TUNE_SEED} == {3}
    assert {s for seed, k, s in seen if seed != mod.TUNE_SEED and k != "mezo_ref"} == {None}
    assert {s for seed, k, s in seen if seed != mod.TUNE_SEED and k == "mezo_ref"} == {3}  # ref_steps (smoke)
    assert not any(k == "mezo_ref" for seed, k, _ in seen if seed == mod.TUNE_SEED)         # inherits MeZO's LR
    n = len(seen)
    again = json.loads(run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False,
                                      overrides=["tune_steps=3"]).read_text())
    assert len(seen) == n                                              # nothing trained again
    assert [a["per_seed"] for a in again["arms"]] == [a["per_seed"] for a in res["arms"]]


def _unit(ttt, ts, accs, f=0.5, q=1.0):
    return {"metrics": {"time_to_target_s": ttt, "zo_fraction": f, "touched_fraction": q},
            "curves": {"dev_acc_vs_time": {"x": ts, "y": accs}}}


def test_derive_speedups_and_equal_wallclock_accuracy():
    cfg = resolve_config(EXPERIMENT, "smoke")
    units = {("mezo_fast", "0"): _unit(40.0, [0, 50, 100], [50, 55, 60]),
             ("lezo", "0"): _unit(20.0, [0, 25, 50], [50, 54, 58], q=0.2),
             ("adalezo", "0"): _unit(10.0, [0, 20, 40], [50, 56, 61], q=0.2),
             ("zo_adam", "0"): _unit(float("nan"), [0, 50, 100], [50, 51, 52]),
             ("mezo_ref", "0"): _unit(float("nan"), [0, 5], [50, 50])}
    d = _derive(units, cfg)
    assert d[("mezo_fast", "0")]["speedup_vs_mezo"] == pytest.approx(1.0)
    assert d[("adalezo", "0")]["speedup_vs_mezo"] == pytest.approx(4.0)
    assert d[("adalezo", "0")]["speedup_vs_lezo"] == pytest.approx(2.0)
    assert d[("zo_adam", "0")]["speedup_vs_mezo"] == 0.0              # never reached: counted as 0
    assert "speedup_vs_mezo" not in d[("mezo_ref", "0")]
    # equal wall-clock = time_fraction (0.5) x MeZO's 100 s: the last evaluation at or before 50 s
    assert d[("adalezo", "0")]["dev_acc_at_time"] == 61 and d[("mezo_fast", "0")]["dev_acc_at_time"] == 55
    assert d[("adalezo", "0")]["amdahl_ceiling"] == pytest.approx(1 / (0.5 + 0.5 * 0.2))
    units[("mezo_fast", "0")]["metrics"]["time_to_target_s"] = float("nan")   # MeZO never reached: not measured
    assert "speedup_vs_mezo" not in _derive(units, cfg)[("adalezo", "0")]


@pytest.mark.parametrize("override, match", [
    (["tune_steps=0"], "Invalid tune_steps"),
    (["lr_grid=[-1e-5]"], "Invalid lr_grid"),
    (["target_gain=0"], "Invalid target_gain"),
    (["clip=0"], "Invalid clip"),
])
def test_bad_config_refused_before_any_work(tmp_path, override, match):
    with pytest.raises(UserError, match=match):
        run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False, overrides=override)


def test_bad_config_type():
    with pytest.raises(UserError, match="Invalid steps"):
        resolve_config(EXPERIMENT, "smoke", ["steps=abc"])


def test_model_path_must_be_a_llama_layout_folder(tmp_path):
    import tenfold.experiments.adalezo as mod

    with pytest.raises(UserError, match="Invalid model_path"):
        mod._lm(str(tmp_path / "missing"))
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=64, n_positions=16)).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="Llama layout"):
        mod._lm(str(tmp_path))


def test_user_llama_folder_in_bf16_runs_a_step(tmp_path):
    """A user's own Llama-layout model folder (here a tiny random one, saved in bf16) trains through the same path."""
    import tenfold.experiments.adalezo as mod
    from tenfold.models.pretrained import smollm2_tokenizer

    _smollm2_or_skip()
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tokenizer()
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=2)).to(torch.bfloat16)
    lm.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    cfg = resolve_config(EXPERIMENT, "smoke", [f"model_path={tmp_path / 'm'}", "top_blocks=2"])
    out = mod._train({"kind": "adalezo", "lr": 1e-4}, cfg, 0, "test", tmp_path / "cache", steps=2)
    assert out["step"] == 2 and math.isfinite(out["test_loss"])
    assert [g["name"] for g in out["opt"].param_groups] == ["block0", "block1", "rest"]
    assert all(p.dtype == torch.bfloat16 for g in out["opt"].param_groups for p in g["params"])


def test_posthoc_time_to_90_percent_of_mezo_gain():
    cfg = resolve_config(EXPERIMENT, "smoke")
    units = {("mezo_fast", "0"): _unit(40.0, [0, 50, 100], [50, 55, 60]),     # gain 10: goal 50 + 9 = 59
             ("lezo", "0"): _unit(20.0, [0, 25, 50], [50, 54, 58], q=0.2),     # never reaches 59
             ("adalezo", "0"): _unit(10.0, [0, 20, 40], [50, 59, 61], q=0.2)}  # at 20 s
    d = _derive(units, cfg)
    assert d[("mezo_fast", "0")]["time_to_90_s"] == 100 and d[("adalezo", "0")]["time_to_90_s"] == 20
    assert math.isnan(d[("lezo", "0")]["time_to_90_s"])
    assert d[("adalezo", "0")]["speedup90_vs_mezo"] == pytest.approx(5.0)
    assert d[("lezo", "0")]["speedup90_vs_mezo"] == 0.0
    assert "speedup90_vs_lezo" not in d[("adalezo", "0")]   # LeZO never reached: not measured


@pytest.mark.gpu
def test_reproduction_path_on_cuda_with_a_user_llama(tmp_path):
    """The GPU preset's path: a user's Llama-layout folder, the cached states and the ZO arms on CUDA."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import tenfold.experiments.adalezo as mod
    from tenfold.models.pretrained import smollm2_tokenizer

    _smollm2_or_skip()
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tokenizer()
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    cfg = resolve_config(EXPERIMENT, "smoke", [f"model_path={tmp_path / 'm'}", "top_blocks=2"])
    for spec in ({"kind": "mezo", "lr": 1e-4}, {"kind": "adalezo", "lr": 1e-4}, {"kind": "mezo_ref", "lr": 1e-4},
                 {"kind": "adalezo", "lr": 1e-4, "adam": True}):
        out = mod._train(spec, cfg, 0, "test", tmp_path / "cache", steps=3, device="cuda")
        assert out["step"] == 3 and math.isfinite(out["test_loss"])
        assert all(p.is_cuda for g in out["opt"].param_groups for p in g["params"])
