"""FedInit as Flower pieces (`tenfold.federated.flower`): the mods, the strategy wrapper and `local_sgd` on real
Flower messages, delivered in process through a ClientApp (so its mods apply); FL-Simulator's Dirichlet split; and
the user example once on Flower's simulation engine (Ray)."""

import math
import random
import runpy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

pytest.importorskip("flwr")

from federated.local_grid import LocalGrid  # noqa: E402
from flwr.app import (ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord,  # noqa: E402
                      RecordDict)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from tenfold.federated.rounds import GridView  # noqa: E402
from tenfold.common.errors import UserError  # noqa: E402
from tenfold.data.partition import count_duplicates, flsim_dirichlet_partition  # noqa: E402
from tenfold.federated.flower import (CORRECTION_KEY, DIVERGENCE_METRIC, DRIFT_METRIC, LAST_STATE,  # noqa: E402
                                      OFFSET_METRIC, FedInit, fedinit_mod, local_sgd, make_fedinit_mod,
                                      make_scaffold, scaffold_mod)
from tenfold.federated.maths import delta_equivalent, relaxed_start, weighted_average  # noqa: E402

N = 4
COMMON = dict(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2)


# ----------------------------------------------------------------------------- a user's model, data and ClientApp
def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


def batches(pid):
    """Unequal clients: 8, 12, 16, 20 samples in batches of 4 (no shuffling: training is deterministic)."""
    g = torch.Generator().manual_seed(100 + pid)
    n = 8 + 4 * pid
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    return list(zip(x.split(4), y.split(4)))


def make_app(mods=(), model_fn=mlp, data_fn=batches, loss_fn=F.cross_entropy, spy=None):
    app = ClientApp(mods=list(mods))

    @app.train()
    def train(msg, context):
        pid = int(context.node_config["partition-id"])
        model = model_fn()
        received = msg.content["arrays"].to_torch_state_dict()
        model.load_state_dict(received)
        steps, n = local_sgd(model, data_fn(pid), msg.content["config"], loss_fn=loss_fn,
                             correction=msg.content.get(CORRECTION_KEY))
        local = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if spy is not None:
            spy.append(dict(round=int(msg.content["config"]["server-round"]), pid=pid, start=received, local=local))
        metrics = MetricRecord({"num-examples": n, "num-steps": steps, "unit": 1.0})
        return Message(RecordDict({"arrays": ArrayRecord(local), "metrics": metrics}), reply_to=msg)

    return app


class AppGrid(LocalGrid):
    """tests/federated/local_grid.py's grid, delivering every message through `app` (a ClientApp with mods)."""

    def __init__(self, app, n_clients=N):
        super().__init__(n_clients)
        self.app = app
        self.node_of = {p: n for n, p in self.nodes.items()}

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for m in reversed(list(messages)):  # arrival order differs from send order
            node = m.metadata.dst_node_id
            self.sent.append(node)
            replies.append(self.app(m, self.contexts[node]))
        return replies


def run_plan(strategy, app, plan, config=None, model_fn=mlp):
    """Rounds 1..len(plan), round r trained by the partitions plan[r-1]; returns globals [w0, w1, ...] and metrics."""
    grid = AppGrid(app)
    arrays = ArrayRecord(model_fn().state_dict())
    globals_, metrics = [arrays.to_torch_state_dict()], [None]
    for r, pids in enumerate(plan, 1):
        msgs = strategy.configure_train(r, arrays, ConfigRecord(config or {"lr": 0.1}),
                                        GridView(grid, [grid.node_of[p] for p in pids]))
        arrays, m = strategy.aggregate_train(r, grid.send_and_receive(msgs))
        globals_.append(arrays.to_torch_state_dict())
        metrics.append(m)
    return globals_, metrics


def run_start(strategy, app, rounds=3, model_fn=mlp):
    """Flower's own round loop (`Strategy.start`), 2 of 4 nodes a round, sampling seeded."""
    random.seed(0)
    return strategy.start(AppGrid(app), ArrayRecord(model_fn().state_dict()), num_rounds=rounds,
                          train_config=ConfigRecord({"lr": 0.1}))


def _equal(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _close(a, b, atol=1e-6):
    return set(a) == set(b) and all(torch.allclose(a[k].double(), b[k].double(), atol=atol) for k in a)


def _train_msg(content):
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    return Message(content, dst_node_id=7, message_type=MessageType.TRAIN)


def _context(state=None):
    return Context(run_id=1, node_id=7, node_config={"partition-id": 0}, state=state or RecordDict(), run_config={})


# ----------------------------------------------------------------------------- fedinit_mod on its own
def test_mod_start_is_relaxed_start_and_upload_is_the_delta_and_int_buffers_pass_unchanged():
    torch.manual_seed(1)
    w = BNNet().state_dict()
    w["body.1.num_batches_tracked"] = torch.tensor(5)
    last = {k: v + torch.randn_like(v) if v.is_floating_point() else torch.tensor(9) for k, v in w.items()}
    seen = {}

    def handler(msg, context):  # "trains": w_K = start + 0.5, counter + 1
        seen["start"] = msg.content["arrays"].to_torch_state_dict()
        seen["content"] = msg.content
        wk = {k: v + 0.5 if v.is_floating_point() else v + 1 for k, v in seen["start"].items()}
        seen["wk"] = wk
        return Message(RecordDict({"arrays": ArrayRecord(wk), "metrics": MetricRecord({"num-examples": 3})}),
                       reply_to=msg)

    shared = RecordDict({"arrays": ArrayRecord(w), "config": ConfigRecord({"fedinit-beta": 0.1})})
    ctx = _context(RecordDict({LAST_STATE: ArrayRecord(last)}))
    reply = fedinit_mod(_train_msg(shared), ctx, handler)

    want = relaxed_start(w, last, 0.1)
    assert _equal(seen["start"], want)  # bit for bit the library's maths
    assert seen["start"]["body.1.num_batches_tracked"].dtype == torch.int64
    assert seen["start"]["body.1.num_batches_tracked"] == 5  # the counter is not relaxed
    assert shared["arrays"].to_torch_state_dict()["body.0.weight"].equal(w["body.0.weight"])  # shared one untouched
    up = reply.content["arrays"].to_torch_state_dict()
    assert _equal(up, delta_equivalent(w, want, seen["wk"]))
    assert up["body.1.num_batches_tracked"].dtype == torch.int64 and up["body.1.num_batches_tracked"] == 6
    assert _equal(ctx.state[LAST_STATE].to_torch_state_dict(), seen["wk"])
    floats = [k for k in w if w[k].is_floating_point()]
    offset = sum(float(((want[k] - w[k]).double() ** 2).sum()) for k in floats)
    drift = sum(float(((seen["wk"][k] - w[k]).double() ** 2).sum()) for k in floats)
    m = reply.content["metrics"]
    assert m[OFFSET_METRIC] == pytest.approx(offset) and m[DRIFT_METRIC] == pytest.approx(drift)
    assert m["num-examples"] == 3 and len(reply.content.array_records) == 1


def test_relax_predicate_keeps_batchnorm_statistics_at_the_global_values():
    w = BNNet().state_dict()
    last = {k: v + 1 if v.is_floating_point() else v for k, v in w.items()}
    seen = {}

    def handler(msg, context):
        seen["start"] = msg.content["arrays"].to_torch_state_dict()
        return Message(RecordDict({"arrays": msg.content["arrays"], "metrics": MetricRecord({})}), reply_to=msg)

    mod = make_fedinit_mod(relax=lambda name: "running_" not in name)
    content = RecordDict({"arrays": ArrayRecord(w), "config": ConfigRecord({"fedinit-beta": 0.2})})
    mod(_train_msg(content), _context(RecordDict({LAST_STATE: ArrayRecord(last)})), handler)
    assert seen["start"]["body.1.running_var"].equal(w["body.1.running_var"])
    assert not seen["start"]["body.0.weight"].equal(w["body.0.weight"])


@pytest.mark.parametrize("mod", [fedinit_mod, scaffold_mod])
@pytest.mark.parametrize("mtype", [MessageType.QUERY, MessageType.EVALUATE])
def test_query_and_evaluate_messages_pass_the_mods_untouched(mod, mtype):
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    content = RecordDict({"arrays": ArrayRecord(mlp().state_dict()), "config": ConfigRecord({"fedinit-beta": 0.1})})
    msg = Message(content, dst_node_id=7, message_type=mtype)
    ctx = _context()
    seen = {}

    def handler(m, context):
        seen["msg"], seen["content"] = m, m.content
        seen["reply"] = Message(RecordDict({"metrics": MetricRecord({"x": 1.0})}), reply_to=m)
        return seen["reply"]

    reply = mod(msg, ctx, handler)
    assert seen["msg"] is msg and seen["content"] is content and reply is seen["reply"]
    assert list(ctx.state.keys()) == [] and dict(reply.content["metrics"]) == {"x": 1.0}


def test_mods_answer_a_message_they_cannot_serve_with_an_error_reply():
    content = RecordDict({"arrays": ArrayRecord(mlp().state_dict()), "config": ConfigRecord({"lr": 0.1})})
    reply = fedinit_mod(_train_msg(content), _context(), lambda m, c: pytest.fail("must not train"))
    assert reply.has_error() and "FedInit" in reply.error.reason
    reply = scaffold_mod(_train_msg(content), _context(), lambda m, c: pytest.fail("must not train"))
    assert reply.has_error() and "scaffold-c" in reply.error.reason


# ----------------------------------------------------------------------------- FedInit on Flower strategies
@pytest.mark.parametrize("first_visit", ["initial", "global"])
def test_first_visit_starts_and_revisits_start_from_the_last_local_model(first_visit):
    spy = []
    strategy = FedInit(FedAvg(**COMMON), beta=0.2, first_visit=first_visit)
    globals_, _ = run_plan(strategy, make_app([fedinit_mod], spy=spy), [[0, 1], [0, 2]])
    w0, w1 = globals_[0], globals_[1]
    by = {(s["round"], s["pid"]): s for s in spy}
    assert _equal(by[1, 0]["start"], w0) and _equal(by[1, 1]["start"], w0)  # w0 + beta (w0 - w0) = w0
    new = relaxed_start(w1, w0, 0.2) if first_visit == "initial" else w1  # partition 2 comes for the first time
    assert _equal(by[2, 2]["start"], new)
    assert _equal(by[2, 0]["start"], relaxed_start(w1, by[1, 0]["local"], 0.2))  # its own last local model
    assert strategy.seen_nodes == {AppGrid(None).node_of[p] for p in (0, 1, 2)}


@pytest.mark.parametrize("weighting", ["uniform", "examples"])
def test_average_of_delta_uploads_is_global_plus_weighted_mean_update(weighting):
    spy = []
    globals_, _ = run_plan(FedInit(FedAvg(**COMMON), beta=0.3, weighting=weighting),
                           make_app([fedinit_mod], spy=spy), [[0, 1], [0, 2]])
    w1, w2 = globals_[1], globals_[2]
    rnd2 = [s for s in spy if s["round"] == 2]
    sizes = {0: 8, 2: 16}
    weights = [1.0 if weighting == "uniform" else sizes[s["pid"]] for s in rnd2]
    mean_update = weighted_average([{k: s["local"][k] - s["start"][k] for k in w1} for s in rnd2], weights)
    assert _close(w2, {k: w1[k] + mean_update[k] for k in w1})
    other = [sizes[s["pid"]] if weighting == "uniform" else 1.0 for s in rnd2]
    wrong = weighted_average([{k: s["local"][k] - s["start"][k] for k in w1} for s in rnd2], other)
    assert not _close(w2, {k: w1[k] + wrong[k] for k in w1})  # the two weightings really differ here


def _scaffold(**kw):
    return make_scaffold(n_clients=N, **kw)


BETA0_CASES = {  # name: (plain strategy, the strategy FedInit wraps, client mods besides fedinit_mod, weighting)
    "fedavg": (lambda kw: FedAvg(**kw), lambda kw: FedAvg(**kw), [], "examples"),
    "fedavg-uniform": (lambda kw: FedAvg(weighted_by_key="unit", **kw), lambda kw: FedAvg(**kw), [], "uniform"),
    "fedprox": (lambda kw: FedProx(proximal_mu=0.5, **kw), lambda kw: FedProx(proximal_mu=0.5, **kw), [], "examples"),
    "fedadam": (lambda kw: FedAdam(eta=0.05, **kw), lambda kw: FedAdam(eta=0.05, **kw), [], "examples"),
    "scaffold": (lambda kw: _scaffold(**kw), lambda kw: _scaffold(**kw), [scaffold_mod], "examples"),
}


@pytest.mark.parametrize("case", list(BETA0_CASES))
def test_beta0_reproduces_the_wrapped_strategy_bit_for_bit(case):
    plain_fn, inner_fn, mods, weighting = BETA0_CASES[case]
    kw = dict(fraction_train=0.5, fraction_evaluate=0.0)
    plain = run_start(plain_fn(kw), make_app(mods))
    ours = run_start(FedInit(inner_fn(kw), beta=0.0, weighting=weighting), make_app([fedinit_mod, *mods]))
    a, b = plain.arrays.to_numpy_ndarrays(), ours.arrays.to_numpy_ndarrays()
    assert all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b, strict=True))
    assert all(ours.train_metrics_clientapp[r][OFFSET_METRIC] == 0.0 for r in (1, 2, 3))


def test_fedprox_anchor_is_the_relaxed_start():
    # loss = sum(model(x)): gradient g = sum of x, whatever the weights; two steps from s with anchor a:
    # s - lr g - lr (g + mu (s - lr g - a)), which is s - lr g (2 - lr mu) only if a = s
    lr, mu = 0.1, 0.5
    x = {p: torch.randn(4, 3, generator=torch.Generator().manual_seed(p), dtype=torch.float64) for p in range(N)}

    def model_fn():
        return nn.Linear(3, 1, bias=False).double()

    spy = []
    app = make_app([fedinit_mod], model_fn=model_fn, data_fn=lambda p: [(x[p], torch.zeros(4))],
                   loss_fn=lambda out, y: out.sum(), spy=spy)
    strategy = FedInit(FedProx(proximal_mu=mu, **COMMON), beta=0.5)
    globals_, _ = run_plan(strategy, app, [[0, 1], [0, 1]], {"lr": lr, "local-epochs": 2}, model_fn=model_fn)
    for s in (s for s in spy if s["round"] == 2):
        start, g = s["start"]["weight"], x[s["pid"]].sum(0, keepdim=True)
        assert not torch.allclose(start, globals_[1]["weight"])  # the relaxation is on
        assert torch.allclose(s["local"]["weight"], start - lr * g * (2 - lr * mu), atol=1e-12)


def test_divergence_is_mean_squared_distance_of_local_models_to_the_new_global():
    spy = []
    globals_, metrics = run_plan(FedInit(FedAvg(**COMMON), beta=0.1, divergence=True),
                                 make_app([fedinit_mod], spy=spy), [[0, 1], [1, 2]])
    for r in (1, 2):
        locals_ = [s["local"] for s in spy if s["round"] == r]
        want = np.mean([sum(float(((loc[k] - globals_[r][k]).double() ** 2).sum()) for k in loc) for loc in locals_])
        assert metrics[r][DIVERGENCE_METRIC] == pytest.approx(want, rel=1e-6)
        assert metrics[r][OFFSET_METRIC] >= 0.0


def test_scaffold_with_fedinit_through_the_mods_equals_a_naive_fl_simulator_loop():
    plan, beta, lr0, decay = [[0, 1], [1, 2], [0, 3]], 0.1, 0.05, 0.9
    strategy = FedInit(_scaffold(**COMMON), beta=beta, lr=lr0, lr_decay=decay)
    globals_, _ = run_plan(strategy, make_app([fedinit_mod, scaffold_mod]), plan)

    # naive: every client's last model starts at w0, control variates at 0; unweighted mean of updates
    w = globals_[0]
    last = {p: w for p in range(N)}
    ci = {p: {k: torch.zeros_like(v) for k, v in w.items()} for p in range(N)}
    c = {k: torch.zeros_like(v) for k, v in w.items()}
    model = mlp()
    for r, pids in enumerate(plan, 1):
        lr = lr0 * decay ** (r - 1)
        uploads, dcs = [], []
        for p in pids:
            start = relaxed_start(w, last[p], beta)
            model.load_state_dict(start)
            k_steps, _ = local_sgd(model, batches(p), {"lr": lr}, correction={k: c[k] - ci[p][k] for k in c})
            wk = {k: v.detach().clone() for k, v in model.state_dict().items()}
            new_ci = {k: ci[p][k] - c[k] + (start[k] - wk[k]) / (k_steps * lr) for k in c}
            dcs.append({k: new_ci[k] - ci[p][k] for k in c})
            ci[p], last[p] = new_ci, wk
            uploads.append(delta_equivalent(w, start, wk))
        avg = weighted_average(uploads, [1.0] * len(uploads))
        w = {k: w[k] + (avg[k] - w[k]) for k in w}
        c = {k: c[k] + len(dcs) / N * sum(d[k] for d in dcs) / len(dcs) for k in c}
        assert _close(globals_[r], w, atol=1e-5), f"round {r}"
    assert _close(strategy.strategy.c, c, atol=1e-4)


@pytest.mark.parametrize("model_fn", [mlp, BNNet], ids=["mlp", "batchnorm"])
def test_any_model_trains_with_fedinit_and_counters_are_never_relaxed(model_fn):
    spy = []
    app = make_app([fedinit_mod], model_fn=model_fn, spy=spy)
    globals_, metrics = run_plan(FedInit(FedAvg(**COMMON), beta=0.1, clip=10.0), app, [[0, 1], [0, 2], [1, 3]],
                                 model_fn=model_fn)
    assert all(torch.isfinite(v).all() for v in globals_[-1].values())
    assert metrics[1][OFFSET_METRIC] == 0.0 and all(metrics[r][OFFSET_METRIC] > 0 for r in (2, 3))
    for s in spy:
        w = globals_[s["round"] - 1]
        floats = [k for k, v in s["local"].items() if v.is_floating_point()]
        assert (s["round"] == 1) == all(s["start"][k].equal(w[k]) for k in floats)  # relaxed from round 2 on
        for k in set(w) - set(floats):  # num_batches_tracked: int64 in the model, float64 once FedAvg averaged it
            assert s["start"][k].equal(w[k]) and s["local"][k].dtype == torch.int64


@pytest.mark.parametrize("kw, fragment", [
    (dict(beta=1.0), "Invalid beta"), (dict(beta=-0.1), "Invalid beta"),
    (dict(first_visit="never"), "Invalid first_visit"), (dict(weighting="size"), "Invalid weighting"),
    (dict(upload="grads"), "Invalid upload"), (dict(lr=0.0), "Invalid lr"), (dict(lr_decay=0.0), "Invalid lr_decay"),
    (dict(clip=-1.0), "Invalid clip"), (dict(weight_decay=-1e-3), "Invalid weight_decay"),
])
def test_fedinit_refuses_bad_arguments_naming_them(kw, fragment):
    with pytest.raises(UserError, match=fragment):
        FedInit(FedAvg(), **kw)


def test_fedinit_refuses_a_non_strategy():
    with pytest.raises(UserError, match="Invalid strategy"):
        FedInit(object())


# ----------------------------------------------------------------------------- local_sgd
def test_local_sgd_step_is_clipped_corrected_sgd_with_weight_decay():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    p0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    corr = {"weight": torch.full((2, 3), 2.0), "bias": torch.full((2,), -1.0)}
    cfg = {"lr": 0.1, "weight-decay": 0.01, "clip-norm": 0.5}
    assert local_sgd(model, [(x, y)], cfg, correction=corr) == (1, 5)
    ref = nn.Linear(3, 2)
    ref.load_state_dict(p0)
    F.cross_entropy(ref(x), y).backward()
    g = {k: p.grad + corr[k] for k, p in ref.named_parameters()}
    norm = torch.sqrt(sum((v ** 2).sum() for v in g.values()))
    scale = min(1.0, 0.5 / (float(norm) + 1e-6))
    for k, p in model.named_parameters():
        assert torch.allclose(p, p0[k] - 0.1 * (g[k] * scale + 0.01 * p0[k]), atol=1e-6)


def test_local_sgd_refuses_missing_lr_and_a_one_shot_iterator_for_several_epochs():
    data = [(torch.randn(2, 3), torch.tensor([0, 1]))]
    with pytest.raises(UserError, match="lr"):
        local_sgd(nn.Linear(3, 2), data, {})
    with pytest.raises(UserError, match="Invalid batches"):
        local_sgd(nn.Linear(3, 2), iter(data), {"lr": 0.1, "local-epochs": 2})


# ----------------------------------------------------------------------------- FL-Simulator's Dirichlet split
def _flsim_transcription(y, n_client, alpha, seed):
    """FL-Simulator's `DatasetObject.set_data` (rule 'Dirichlet') as written there, with its global np.random; the
    "images" are the original indices."""
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        rand_perm = np.random.permutation(len(y))
        train_x, train_y = np.arange(len(y))[rand_perm], y[rand_perm]
        n_cls = int(y.max()) + 1
        client_data_list = np.ones(n_client, dtype=int) * int(len(train_y) / n_client)
        diff = np.sum(client_data_list) - len(train_y)
        if diff != 0:
            for client_i in range(n_client):
                if client_data_list[client_i] > diff:
                    client_data_list[client_i] -= diff
                    break
        prior_cumsum = np.cumsum(np.random.dirichlet(alpha=[alpha] * n_cls, size=n_client), axis=1)
        idx_list = [np.where(train_y == i)[0] for i in range(n_cls)]
        cls_amount = [len(idx_list[i]) for i in range(n_cls)]
        client_x = [np.zeros(client_data_list[c], dtype=np.int64) for c in range(n_client)]
        while np.sum(client_data_list) != 0:
            curr_client = np.random.randint(n_client)
            if client_data_list[curr_client] <= 0:
                continue
            client_data_list[curr_client] -= 1
            curr_prior = prior_cumsum[curr_client]
            while True:
                cls_label = np.argmax(np.random.uniform() <= curr_prior)
                if cls_amount[cls_label] <= 0:
                    cls_amount[cls_label] = len(idx_list[cls_label])
                    continue
                cls_amount[cls_label] -= 1
                client_x[curr_client][client_data_list[curr_client]] = \
                    train_x[idx_list[cls_label][cls_amount[cls_label]]]
                break
        return client_x
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize("n, n_clients, alpha, seed", [(503, 7, 0.3, 0), (1000, 10, 0.05, 3)])
def test_flsim_split_equals_fl_simulators_own_loop(n, n_clients, alpha, seed):
    y = np.random.default_rng(seed).integers(0, 5, n)
    ours = flsim_dirichlet_partition(y, n_clients, alpha, seed)
    theirs = _flsim_transcription(y, n_clients, alpha, seed)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_flsim_split_sizes_seed_and_counted_duplicates():
    y = np.repeat(np.arange(10), 100)
    parts = flsim_dirichlet_partition(y, 7, 0.05, seed=1)
    assert [len(p) for p in parts] == [142 + 6] + [142] * 6  # equal, the remainder on client 0
    counts = Counter(np.concatenate(parts).tolist())
    dups = sum(c - 1 for c in counts.values())
    assert count_duplicates(parts) == dups > 0  # strong skew exhausts classes: refills repeat samples
    assert all(np.array_equal(a, b) for a, b in zip(parts, flsim_dirichlet_partition(y, 7, 0.05, seed=1)))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, flsim_dirichlet_partition(y, 7, 0.05, seed=2)))
    assert count_duplicates([np.arange(5), np.arange(3, 8)]) == 2


def test_flsim_split_label_frequencies_follow_the_client_priors():
    y = np.repeat(np.arange(10), 1000)
    parts, priors = flsim_dirichlet_partition(y, 4, 1.0, seed=0, return_priors=True)
    freq = np.stack([np.bincount(y[p], minlength=10) / len(p) for p in parts])
    assert priors.shape == (4, 10) and np.allclose(priors.sum(1), 1.0)
    assert np.abs(freq - priors).max() < 0.05  # 2500 draws a client: sd <= 0.01


@pytest.mark.parametrize("kw, fragment", [(dict(alpha=0.0), "Invalid alpha"), (dict(n_clients=0), "n_clients")])
def test_flsim_split_refuses_bad_arguments(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        flsim_dirichlet_partition(np.arange(10) % 2, **{"n_clients": 2, "alpha": 0.5, **kw})


def test_flsim_split_refuses_labels_with_a_missing_class():
    with pytest.raises(ValueError, match=r"classes \[1\] never occur"):
        flsim_dirichlet_partition(np.array([0, 2, 2, 0]), 2, 0.5)


# ----------------------------------------------------------------------------- the user example, on Ray
def test_user_example_runs_on_flowers_simulation_engine(monkeypatch):
    pytest.importorskip("ray")
    from tenfold.federated.simulation import quiet_flower, shutdown_ray

    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    quiet_flower()
    path = Path(__file__).resolve().parents[2] / "examples" / "fedinit_any_model.py"
    try:
        env = runpy.run_path(str(path), run_name="__main__")
    finally:
        shutdown_ray()
    res = env["out"]["result"]
    assert sorted(res.train_metrics_clientapp) == [1, 2, 3]
    assert all(np.isfinite(a).all() for a in res.arrays.to_numpy_ndarrays())
    assert all(math.isfinite(float(v)) for m in res.train_metrics_clientapp.values() for v in m.values())
    assert all(res.train_metrics_clientapp[r][OFFSET_METRIC] > 0 for r in (2, 3))
