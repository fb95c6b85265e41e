"""The SSR pipeline on a tiny random Llama with SmolLM2's tokenizer: the cached-trunk split is exact, the
one-pass exact match equals greedy decoding, LoRA task vectors are B A alpha/r, stages cache and resume
bit-identically, reconcile equals a direct merge, and bad input is refused."""

import dataclasses

import pytest
import torch

from tenfold.common.errors import UserError
from tenfold.merging import merge
from tenfold.merging.domains import Example, make_split
from tenfold.merging.ssr import (
    SSRConfig, SSRPipeline, answer_positions, greedy_hits, head_logits, head_state,
)


def _model_fn(tok, layers=3):
    from tenfold.models.hf_tiny import tiny_llama

    def fn():
        torch.manual_seed(123)  # the same "pre-trained" weights on every call
        model, _ = tiny_llama("debug", vocab_size=len(tok), num_hidden_layers=layers)
        return model.eval(), tok
    return fn


def _domains():
    return {d: make_split(d, 12, 4) for d in ("spatial", "driving", "aerial")}


CFG = SSRConfig(adapt_layers=2, lora_rank=2, batch_size=2, scaffold_steps=3, expert_steps=2, checkpoint_every=2,
                eval_batch=3)


@pytest.fixture(scope="module")
def pipe(tok, tmp_path_factory):
    return SSRPipeline(CFG, _domains(), tmp_path_factory.mktemp("ssr"), _model_fn(tok))


def test_cached_trunk_plus_head_equals_full_model(pipe, tok):
    full, _ = _model_fn(tok)()
    enc = pipe.cache.data["driving/test"]
    mask = answer_positions(enc.prompt_len, enc.total_len, enc.ids.shape[1])
    with torch.no_grad():
        ref = full(input_ids=enc.ids).logits[mask]
        out = head_logits(pipe.model, enc.hidden, mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert pipe.n_frozen == 1 and len(pipe.model.model.layers) == 2


@pytest.mark.parametrize("pred,target,lengths,hits", [
    ([4, 2], [4, 2], [2], [True]),               # answer then eos
    ([4, 9], [4, 2], [2], [True]),               # a newline-like stop token (9) also ends it
    ([4, 5], [4, 2], [2], [False]),              # keeps going: not a stop token
    ([3, 2], [4, 2], [2], [False]),              # wrong answer token
    ([4, 7, 2, 1, 2], [4, 7, 2, 1, 2], [3, 2], [True, True]),
    ([4, 6, 2, 1, 2], [4, 7, 2, 1, 2], [3, 2], [False, True]),
])
def test_greedy_hits_table(pred, target, lengths, hits):
    t = torch.tensor
    assert greedy_hits(t(pred), t(target), t(lengths), t([2, 9])) == hits


def test_one_pass_exact_match_equals_greedy_generation(tok, tmp_path):
    """Rig answers in token space from the model's own greedy tokens, then compare with a naive decode loop."""
    pipe = SSRPipeline(dataclasses.replace(CFG, adapt_layers=3), _domains(), tmp_path, _model_fn(tok))
    full, _ = _model_fn(tok)()
    enc = pipe.cache.data["spatial/test"]
    ids = enc.ids.clone()
    for i in range(len(ids)):  # even rows: answer = the model's greedy tokens; odd rows: kept (wrong)
        p, n = int(enc.prompt_len[i]), int(enc.total_len[i] - enc.prompt_len[i])
        if i % 2 == 0:
            with torch.no_grad():
                g = full.generate(ids[i:i + 1, :p], max_new_tokens=n, do_sample=False, pad_token_id=0)[0, p:]
            ids[i, p:p + n] = g
    pipe._stop = torch.tensor(sorted({int(ids[i, int(enc.total_len[i]) - 1]) for i in range(0, len(ids), 2)}))
    enc.ids = ids
    with torch.no_grad():
        enc.hidden = pipe.model.model.embed_tokens(ids)  # n_frozen = 0: the "trunk" is the embedding
    got = pipe.evaluate(pipe.base_state, "spatial")
    naive = []
    for i in range(len(ids)):
        p, e = int(enc.prompt_len[i]), int(enc.total_len[i])
        with torch.no_grad():
            g = full.generate(ids[i:i + 1, :p], max_new_tokens=e - p, do_sample=False, pad_token_id=0)[0, p:]
        naive.append(bool((g[:-1] == ids[i, p:e - 1]).all()) and int(g[-1]) in pipe._stop.tolist())
    assert naive[0::2] == [True] * len(naive[0::2])
    assert got == pytest.approx(100.0 * sum(naive) / len(naive))


def test_lora_task_vector_is_low_rank_and_only_on_targets(pipe):
    start = pipe.base_state
    s = pipe.scaffold("spatial")
    for k in start:
        d = s[k] - start[k]
        if any(t in k for t in CFG.lora_targets):
            assert d.abs().max() > 0 and torch.linalg.matrix_rank(d) <= CFG.lora_rank, k
        else:
            assert torch.equal(d, torch.zeros_like(d)), k  # norms untouched
    assert set(s) == set(start) and all(k.startswith("model.layers.") for k in s)


def test_merged_lora_delta_equals_b_a_alpha_over_r():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4))
    w0 = net[0].weight.detach().clone()
    pm = get_peft_model(net, LoraConfig(r=2, lora_alpha=6, target_modules=["0"], init_lora_weights=False))
    a, b = pm.base_model.model[0].lora_A["default"].weight, pm.base_model.model[0].lora_B["default"].weight
    expect = (b @ a * 3.0).detach()
    merged = pm.merge_and_unload()
    torch.testing.assert_close(merged[0].weight - w0, expect)


def test_stage_is_cached_and_resume_is_bit_identical(tok, tmp_path):
    doms = _domains()
    ref_pipe = SSRPipeline(CFG, doms, tmp_path / "ref", _model_fn(tok))
    ref = ref_pipe.train(ref_pipe.base_state, ["driving"], 4, "t")

    class Stop(Exception):
        pass

    def boom(step, loss):
        if step == 2:  # after the step-2 checkpoint (checkpoint_every=2)
            raise Stop

    p = SSRPipeline(CFG, doms, tmp_path / "cut", _model_fn(tok))
    with pytest.raises(Stop):
        p.train(p.base_state, ["driving"], 4, "t", on_step=boom)
    assert (tmp_path / "cut" / "t.partial.pt").exists()
    p2 = SSRPipeline(CFG, doms, tmp_path / "cut", _model_fn(tok))
    seen = []
    out = p2.train(p2.base_state, ["driving"], 4, "t", on_step=lambda s, l: seen.append(s))
    assert seen == [2, 3]
    for k in ref:
        assert torch.equal(out[k], ref[k]), k
    again = p2.train(p2.base_state, ["driving"], 4, "t", on_step=lambda s, l: seen.append(s))
    assert seen == [2, 3] and all(torch.equal(again[k], ref[k]) for k in ref)  # loaded, not retrained


def test_interrupted_stage_leaves_no_adapters_and_other_starts_are_refused(tok, tmp_path):
    p = SSRPipeline(CFG, _domains(), tmp_path, _model_fn(tok))

    class Stop(Exception):
        pass

    def boom(step, loss):
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        p.train(p.base_state, ["driving"], 4, "t", on_step=boom)
    assert not hasattr(p.model, "peft_config") and not any("lora" in k for k in p.model.state_dict())
    # the same tag from other start weights, another mixture or another length: refused, not silently reused
    other = {k: v + 1e-3 for k, v in p.base_state.items()}
    with pytest.raises(UserError, match="other start weights"):
        p.train(other, ["driving"], 4, "t")  # the partial checkpoint
    done = p.train(p.base_state, ["driving"], 4, "t")
    with pytest.raises(UserError, match="other start weights"):
        p.train(p.base_state, ["aerial"], 4, "t")  # the final checkpoint
    assert all(torch.equal(done[k], v) for k, v in p.train(p.base_state, ["driving"], 4, "t").items())


def test_full_finetune_changes_every_adapted_weight(tok, tmp_path):
    p = SSRPipeline(dataclasses.replace(CFG, finetune="full", lr=1e-3), _domains(), tmp_path, _model_fn(tok))
    s = p.train(p.base_state, ["aerial"], 1, "f")
    assert all(not torch.equal(s[k], p.base_state[k]) for k in s if k.endswith("proj.weight"))


@pytest.mark.parametrize("method", ["average", "ties", "wudi"])
def test_reconcile_equals_a_direct_merge(pipe, method):
    # the paper's convention: the scaffold and the experts branched from it, against the pre-trained model
    stages = {"spatial": pipe.scaffold("spatial"), **{d: pipe.specialise(d, "scaffold", "spatial")
                                                      for d in ("driving", "aerial")}}
    got = pipe.reconcile(method, stages)
    want = merge(method, pipe.base_state, list(stages.values()))
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert all(torch.equal(got[k], v) for k, v in pipe.reconcile(method, stages).items())  # from its checkpoint
    acc = pipe.evaluate_all(got)
    assert set(acc) == {"spatial", "driving", "aerial"} and all(0 <= v <= 100 for v in acc.values())


def test_reconcile_takes_any_base_and_never_reuses_a_merge_of_other_weights(pipe):
    scaffold = pipe.scaffold("spatial")
    experts = {d: pipe.specialise(d, "scaffold", "spatial") for d in ("driving", "aerial")}
    against_scaffold = pipe.reconcile("task_arithmetic", experts, scaffold)
    want = merge("task_arithmetic", scaffold, list(experts.values()))
    assert all(torch.equal(against_scaffold[k], want[k]) for k in want)
    against_base = pipe.reconcile("task_arithmetic", experts)  # same names, other base: a new merge
    assert any(not torch.equal(against_base[k], want[k]) for k in want)
    # stage checkpoints by path give the same merge as their states
    paths = {d: pipe.work_dir / f"expert_{d}_from_scaffold.pt" for d in experts}
    by_path = pipe.reconcile("task_arithmetic", paths, pipe.work_dir / "scaffold_spatial.pt")
    assert all(torch.equal(by_path[k], want[k]) for k in want)
    with pytest.raises(UserError, match="not a stage checkpoint"):
        pipe.reconcile("average", {"x": pipe.work_dir / "nothing.pt"})


def test_experts_from_base_differ_from_experts_from_scaffold(pipe):
    a = pipe.specialise("driving", "base")
    b = pipe.specialise("driving", "scaffold")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_full_model_round_trip(pipe, tok):
    s = pipe.scaffold("spatial")
    model, _ = pipe.full_model(s)
    model.model.layers = model.model.layers[pipe.n_frozen:]
    got = head_state(model, pipe.n_frozen)
    assert all(torch.equal(got[k], s[k]) for k in s)


@pytest.mark.parametrize("change,msg", [
    ({"finetune": "qlora"}, "Invalid finetune"), ({"adapt_layers": 0}, "Invalid adapt_layers"),
    ({"lora_rank": 1.5}, "Invalid lora_rank"), ({"lr": 0.0}, "Invalid lr"), ({"lr": float("nan")}, "Invalid lr"),
    ({"scaffold_steps": -1}, "Invalid scaffold_steps"), ({"lora_targets": ("c_attn",)}, "Invalid lora_targets"),
    ({"lora_targets": ()}, "Invalid lora_targets"), ({"weight_decay": -1}, "Invalid weight_decay"),
    ({"batch_size": True}, "Invalid batch_size"),
])
def test_config_errors(change, msg):
    with pytest.raises(UserError, match=msg):
        dataclasses.replace(CFG, **change).validate()


def test_pipeline_errors(pipe, tok, tmp_path):
    with pytest.raises(UserError, match="Invalid adapt_layers: 9; expected 1..3"):
        SSRPipeline(dataclasses.replace(CFG, adapt_layers=9), _domains(), tmp_path, _model_fn(tok))
    with pytest.raises(UserError, match="Invalid domains"):
        SSRPipeline(CFG, {}, tmp_path, _model_fn(tok))
    with pytest.raises(UserError, match="non-empty test"):
        SSRPipeline(CFG, {"x": ([Example("a\nA:", "b")], [])}, tmp_path, _model_fn(tok))
    with pytest.raises(UserError, match="Invalid domain: 'mars'"):
        pipe.evaluate(pipe.base_state, "mars")
    with pytest.raises(UserError, match="Invalid branch_from"):
        pipe.specialise("driving", "nowhere")
    with pytest.raises(UserError, match="Unknown merge method 'soup'"):
        pipe.reconcile("soup", {"driving": pipe.base_state})
    with pytest.raises(UserError, match="Invalid experts"):
        pipe.reconcile("average", ["driving"])
    with pytest.raises(UserError, match="Invalid start"):
        pipe.joint(["driving"], start="nowhere")
    with pytest.raises(UserError, match="not an adapted layer"):
        pipe.evaluate({"model.layers.0.mlp.up_proj.weight": torch.zeros(1)}, "driving")
