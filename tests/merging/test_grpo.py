"""GRPO through TRL's GRPOTrainer on a tiny random Llama: it runs on CPU with beta=0 (no reference model) and
with the KL variant, logs one reward per step, returns a plain merged model; settings are validated."""

import dataclasses

import pytest
import torch

from tenfold.common.errors import UserError
from tenfold.merging.domains import make_split
from tenfold.merging.grpo import GRPOSettings, exact_match_reward, grpo_train

pytest.importorskip("trl")


def _model(tok):
    from tenfold.models.hf_tiny import tiny_llama

    torch.manual_seed(0)
    return tiny_llama("debug", vocab_size=len(tok))[0]


S = GRPOSettings(steps=2, prompts_per_step=1, num_generations=2, max_completion_length=3, save_every=1)


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_grpo_runs_on_cpu_and_logs_rewards(tok, tmp_path, beta):
    train, _ = make_split("embodied", 4, 1)
    model = _model(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out, log = grpo_train(model, tok, train, dataclasses.replace(S, beta=beta), tmp_path,
                          layers=[1], targets=["q_proj", "v_proj"])
    assert log["step"] == [1, 2] and len(log["reward"]) == 2 and all(0 <= r <= 1 for r in log["reward"])
    assert log["gen_per_s"] > 0
    assert not hasattr(out, "peft_config")  # adapters merged into a plain HF model
    assert set(out.state_dict()) == set(before)
    untouched = [k for k in before if "layers.0." in k]  # only layer 1 had adapters
    assert all(torch.equal(out.state_dict()[k], before[k]) for k in untouched)
    assert (tmp_path / "checkpoint-1").exists()


def test_grpo_resumes_from_its_last_checkpoint(tok, tmp_path):
    train, _ = make_split("embodied", 4, 1)
    grpo_train(_model(tok), tok, train, dataclasses.replace(S, steps=1), tmp_path, layers=[1], targets=["q_proj"])
    _, log = grpo_train(_model(tok), tok, train, S, tmp_path, layers=[1], targets=["q_proj"])
    assert log["step"] == [1, 2]  # step 1 from the checkpoint's log history, step 2 trained now


def test_trainer_prints_nothing_on_stdout(tok, tmp_path, capfd):
    # stdout of `tenfold reproduce ssr` carries only tenfold's lines; HF Trainer's PrinterCallback printed each
    # TRL log dict there; the dicts still reach the returned log (through the trainer's log history)
    train, _ = make_split("embodied", 2, 1)
    capfd.readouterr()
    _, log = grpo_train(_model(tok), tok, train, dataclasses.replace(S, steps=1), tmp_path, layers=[1],
                        targets=["q_proj"])
    out = capfd.readouterr().out
    assert out == "", out[:500]
    assert log["step"] == [1] and len(log["reward"]) == 1 and log["seconds"] > 0


@pytest.mark.parametrize("completion,hit", [(" yes", 1.0), (" yes\nno", 1.0), (" no", 0.0), ("yes please", 0.0),
                                            ("yes", 0.0), ("\nyes", 0.0), (" yes ", 0.0), ("", 0.0)])
def test_reward_is_the_metric_rule_first_line_is_space_answer(completion, hit):
    # the pipeline's greedy metric needs " " + answer and then a stop (end or a new line); so does the reward
    assert exact_match_reward(["p"], [completion], answer=["yes"]) == [hit]


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_kl_term_is_computed_only_with_beta(tok, tmp_path, beta):
    # TRL computes (and logs) the KL to the reference policy only when beta != 0; beta = 0 is the paper's choice
    train, _ = make_split("embodied", 2, 1)
    _, log = grpo_train(_model(tok), tok, train, dataclasses.replace(S, steps=1, beta=beta), tmp_path,
                        layers=[1], targets=["q_proj"])
    assert (len(log["kl"]) == 1 and log["kl"][0] >= 0) if beta else log["kl"] == []


@pytest.mark.parametrize("change,msg", [
    ({"steps": 0}, "Invalid grpo steps"), ({"num_iterations": 0}, "Invalid grpo num_iterations"), ({"num_generations": 1}, "group of >= 2"),
    ({"beta": -0.1}, "Invalid grpo beta"), ({"lr": 0}, "Invalid grpo lr"),
    ({"loss_type": "ppo"}, "Invalid grpo loss_type"), ({"temperature": float("inf")}, "Invalid grpo temperature"),
])
def test_settings_errors(change, msg):
    with pytest.raises(UserError, match=msg):
        dataclasses.replace(S, **change).validate()


def test_empty_examples_refused(tok, tmp_path):
    with pytest.raises(UserError, match="Invalid examples"):
        grpo_train(_model(tok), tok, [], S, tmp_path, layers=[0], targets=["q_proj"])
