"""FedInit [Sun, Shen, Tao, NeurIPS 2023] as Flower pieces for any model and any data.

"Understanding How Consistency Works in Federated Learning via Stage-wise Relaxed Initialization",
arXiv 2306.05706. Reference code: woodenchild95/FL-Simulator (`--use-RI --beta 0.1`). Each selected client i starts
local training at

    w_i^{t,0} = w^t + beta * (w^t - w_i^last)        (w_i^last: its final local model of its last participation)

and uploads its update relative to that start; the server averages the updates, unweighted.

The pieces have the shape of Flower's `fixedclipping_mod` + `DifferentialPrivacyClientSideFixedClipping`:

* `fedinit_mod` (client, a Flower mod): keeps w_i^last in the node's `context.state`, hands the relaxed start to
  the train function as its "arrays", and replies with w^t + (w_i^{t,K} - w_i^{t,0}), a model whose average is
  w^t + the mean update, so that any Flower strategy can aggregate it unchanged;
* `FedInit(strategy)` (server): wraps FedAvg, FedProx, FedAdam, SCAFFOLD (`make_scaffold`) or any `Strategy`; it
  sends beta, the learning rate and the clip norm, sends w^0 once to nodes it has never heard from (FL-Simulator's
  first-visit start w^t + beta (w^t - w^0)), averages unweighted or by examples, and can report the divergence;
* `scaffold_mod` (client): SCAFFOLD's client control variate in `context.state` (option II), around the relaxed
  start when it is placed after `fedinit_mod`;
* `local_sgd`: FL-Simulator's local loop for any `nn.Module` and any iterable of (x, y) batches: SGD with weight
  decay, gradient-norm clipping, epochs, FedProx's proximal term and SCAFFOLD's correction.

The mods never build a model: they work on Flower `ArrayRecord`s (floating arrays are relaxed, all others pass
through unchanged), so the train function may hold any model. Beta = 0 with weighting="examples" reproduces the
wrapped strategy bit for bit (the default "uniform" weighting is FL-Simulator's unweighted mean).
Not implemented: FedDyn, FedCM, FedSAM and the other FL-Simulator methods; a file mirror of the node state for an
exact resume after a client restart (the `tenfold.federated.fedinit` ClientApp has one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from logging import ERROR, INFO

import numpy as np
import torch
from flwr.app import (Array, ArrayRecord, ConfigRecord, Context, Error, Message, MessageType, MetricRecord,
                      RecordDict)
from flwr.common.constant import ErrorCode
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log
from torch import nn
from torch.nn import functional as F

from tenfold.common.errors import UserError, check_choice, check_positive
from tenfold.federated.fedinit import C_KEY, DC_KEY
from tenfold.federated.maths import delta_equivalent, relaxed_start, sq_distance

# train-config keys written by `FedInit` and read by the mods and `local_sgd`
BETA_KEY = "fedinit-beta"               # float: the relaxation beta
UPLOAD_KEY = "fedinit-upload"           # "delta" (w + w_K - start) or "model" (w_K)
REPORT_KEY = "fedinit-report-local"     # bool: also return w_K (for the divergence)
ARRAYS_KEY = "fedinit-arrays-key"       # name of the model's ArrayRecord in the message ("arrays")
# message keys
W0_KEY = "fedinit-w0"                   # down: the initial global model w^0, once, to nodes never heard from
LOCAL_KEY = "fedinit-local"             # up: w_K, popped by `FedInit` before the wrapped strategy sees the reply
CORRECTION_KEY = "scaffold-correction"  # handed to the train function by `scaffold_mod`: c - c_i
# node-state keys (context.state)
LAST_STATE = "fedinit.last"             # w_i^last
CI_STATE = "scaffold.ci"                # SCAFFOLD's c_i
# metric keys
UNIT_KEY = "fedinit-unit"               # weight 1 per reply, for the unweighted average
OFFSET_METRIC = "fedinit-offset-sq"     # ||start - w||^2 = beta^2 ||w - last||^2
DRIFT_METRIC = "fedinit-drift"          # ||w_K - w||^2
DIVERGENCE_METRIC = "fedinit-divergence"  # FL-Simulator's mean_i ||w_K,i - w^{t+1}||^2


# ----------------------------------------------------------------------------- helpers
def _is_train(msg: Message) -> bool:
    return msg.metadata.message_type.split(".")[0] == MessageType.TRAIN


def _error(msg: Message, reason: str) -> Message:
    """An error reply, as Flower's own mods give when a precondition fails."""
    log(ERROR, reason)
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg)


def _config(content: RecordDict) -> ConfigRecord | None:
    """The message's single ConfigRecord, or the one under "config"."""
    records = content.config_records
    if len(records) == 1:
        return next(iter(records.values()))
    return records.get("config")


def _floating(array: Array) -> bool:
    return np.issubdtype(np.dtype(array.dtype), np.floating)


def _tensors(record: ArrayRecord, keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """Named arrays of `record` as CPU tensors (Array.numpy() decodes a fresh copy)."""
    return {k: torch.from_numpy(record[k].numpy()) for k in keys}


def _record(template: ArrayRecord, new: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """`template`'s keys in their order: the arrays in `new` where given, `template`'s own elsewhere."""
    return ArrayRecord({k: Array(new[k].numpy()) if k in new else template[k] for k in template.keys()})


def _single_metrics(reply: Message) -> MetricRecord | None:
    """The reply's one MetricRecord (created under "metrics" if it has none); None if it has several."""
    records = reply.content.metric_records
    if not records:
        reply.content["metrics"] = MetricRecord()
        return reply.content["metrics"]
    return next(iter(records.values())) if len(records) == 1 else None


# ----------------------------------------------------------------------------- client: FedInit mod
def make_fedinit_mod(*, relax: Callable[[str], bool] | None = None):
    """A `fedinit_mod` that relaxes only the floating arrays whose name passes `relax`.

    Parameters
    ----------
    relax : callable(name) -> bool or None, default=None
        Which floating arrays get the relaxed start; None = all of them. An array is relaxed only if it is floating
        in the node's last model too (FedAvg averages an int64 counter into float64: it stays a counter). The others
        start from w^t and are uploaded as trained. BatchNorm's `running_var` can turn negative under
        w + beta (w - last): pass e.g. ``relax=lambda name: "running_" not in name`` (FL-Simulator relaxes
        everything; its models use GroupNorm).

    Returns
    -------
    mod : callable(msg, context, call_next) -> Message
        A Flower mod; put it first in `ClientApp(mods=[...])`.
    """

    def fedinit_mod(msg: Message, context: Context, call_next) -> Message:
        """FedInit's client half (TRAIN messages only; everything else passes through untouched).

        Reads `fedinit-beta` (and `fedinit-upload`, `fedinit-report-local`) from the train config written by
        `FedInit`; replaces the message's arrays by the relaxed start w + beta (w - last), where last is the node's
        final local model of its previous participation, else the w^0 that `FedInit` sent (first visit), else w;
        calls the train function; stores its w_K in `context.state`; replies with w + (w_K - start) (or w_K with
        upload "model") and adds the metrics `fedinit-offset-sq` and `fedinit-drift`.
        """
        if not _is_train(msg):
            return call_next(msg, context)
        config = _config(msg.content)
        if config is None or BETA_KEY not in config:
            return _error(msg, f"fedinit_mod needs '{BETA_KEY}' in the train ConfigRecord; wrap the server "
                               "strategy in tenfold.federated.flower.FedInit")
        beta, upload = float(config[BETA_KEY]), str(config.get(UPLOAD_KEY, "delta"))
        key = str(config.get(ARRAYS_KEY, "arrays"))
        w_rec = msg.content.get(key)
        if not isinstance(w_rec, ArrayRecord):
            return _error(msg, f"fedinit_mod expects the model as an ArrayRecord under '{key}'")
        floats = [k for k in w_rec.keys() if _floating(w_rec[k])]
        relaxed = [k for k in floats if relax is None or relax(k)]

        last_rec = context.state.get(LAST_STATE)
        if last_rec is None:
            last_rec = msg.content.get(W0_KEY)  # first visit: FL-Simulator's w_i^last = w^0; absent -> start at w
        start: dict[str, torch.Tensor] = {}
        if last_rec is not None and beta > 0:
            if set(last_rec.keys()) != set(w_rec.keys()):
                return _error(msg, "fedinit_mod: the node's last local model has other keys than the received "
                                   "arrays (another model in the same node state?)")
            # floating in both: a counter (int64) that an aggregation turned into floats stays as received
            relaxed = [k for k in relaxed if _floating(last_rec[k])]
            start = relaxed_start(_tensors(w_rec, relaxed), _tensors(last_rec, relaxed), beta)
        # a new RecordDict: the strategy may send one shared RecordDict to every node
        content = RecordDict({k: v for k, v in msg.content.items() if k != W0_KEY})
        content[key] = _record(w_rec, start) if start else w_rec
        msg.content = content

        reply = call_next(msg, context)
        if reply.has_error():
            return reply
        wk_rec = reply.content.get(key)
        if not isinstance(wk_rec, ArrayRecord) or list(wk_rec.keys()) != list(w_rec.keys()):
            return _error(reply, f"fedinit_mod expects the reply's ArrayRecord '{key}' to have the received keys")
        metrics = _single_metrics(reply)
        if metrics is None:
            return _error(reply, "fedinit_mod expects at most one MetricRecord in the reply")
        context.state[LAST_STATE] = ArrayRecord(dict(wk_rec.items()))

        w_all, wk = _tensors(w_rec, floats), _tensors(wk_rec, floats)
        if start and upload == "delta":
            # only relaxed arrays need the shift; elsewhere start == w and w_K is uploaded as is (bit for bit)
            reply.content[key] = _record(wk_rec, delta_equivalent({k: w_all[k] for k in start}, start,
                                                                   {k: wk[k] for k in start}))
        if bool(config.get(REPORT_KEY, False)):
            reply.content[LOCAL_KEY] = ArrayRecord(dict(wk_rec.items()))
        metrics[OFFSET_METRIC] = sq_distance(start, {k: w_all[k] for k in start}) if start else 0.0
        metrics[DRIFT_METRIC] = sq_distance(wk, w_all)
        return reply

    return fedinit_mod


fedinit_mod = make_fedinit_mod()


# ----------------------------------------------------------------------------- client: SCAFFOLD mod
def scaffold_mod(msg: Message, context: Context, call_next) -> Message:
    """SCAFFOLD's client half [Karimireddy et al., arXiv 1910.06378], option II, for the `make_scaffold` strategy.

    Pops the server control variate c ("scaffold-c"), hands the train function `scaffold-correction` = c - c_i
    (pass it to `local_sgd(..., correction=...)`), and after training sets

        c_i+ = c_i - c + (start - w_K) / (K * lr)

    with K the reply's `num-steps` metric and lr the train config's `lr`, keeps c_i+ in `context.state` (zeros
    before the first visit) and attaches "scaffold-dc" = c_i+ - c_i. Place it after `fedinit_mod`,
    `ClientApp(mods=[fedinit_mod, scaffold_mod])`, so that `start` is the relaxed start, as in FL-Simulator.
    """
    if not _is_train(msg):
        return call_next(msg, context)
    config = _config(msg.content)
    c_rec = msg.content.get(C_KEY)
    if not isinstance(c_rec, ArrayRecord):
        return _error(msg, f"scaffold_mod needs '{C_KEY}' in the train message; use the make_scaffold() strategy")
    if config is None or "lr" not in config:
        return _error(msg, "scaffold_mod needs 'lr' in the train ConfigRecord (FedInit(lr=...) or train_config)")
    key = str(config.get(ARRAYS_KEY, "arrays"))
    start_rec = msg.content.get(key)
    if not isinstance(start_rec, ArrayRecord):
        return _error(msg, f"scaffold_mod expects the model as an ArrayRecord under '{key}'")
    floats = [k for k in c_rec.keys() if _floating(c_rec[k]) and k in start_rec and _floating(start_rec[k])]
    c = _tensors(c_rec, floats)
    ci_rec = context.state.get(CI_STATE)
    ci = _tensors(ci_rec, floats) if ci_rec is not None else {k: torch.zeros_like(v) for k, v in c.items()}
    content = RecordDict({k: v for k, v in msg.content.items() if k != C_KEY})
    content[CORRECTION_KEY] = ArrayRecord({k: c[k] - ci[k] for k in floats})
    msg.content = content

    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    metrics = reply.content.metric_records
    steps = next(iter(metrics.values())).get("num-steps") if len(metrics) == 1 else None
    wk_rec = reply.content.get(key)
    if not steps or not isinstance(wk_rec, ArrayRecord):
        return _error(reply, "scaffold_mod expects the reply to carry the model and a 'num-steps' metric > 0")
    lr = float(config["lr"])
    start, wk = _tensors(start_rec, floats), _tensors(wk_rec, floats)
    new_ci = {k: ci[k] - c[k] + (start[k] - wk[k]) / (int(steps) * lr) for k in floats}
    context.state[CI_STATE] = ArrayRecord(new_ci)
    # every key of c, so that the server can add it to c (non-float entries do not move)
    dc = {k: new_ci[k] - ci[k] if k in new_ci else torch.zeros_like(torch.from_numpy(c_rec[k].numpy()))
          for k in c_rec.keys()}
    reply.content[DC_KEY] = ArrayRecord(dc)
    return reply


def make_scaffold(*, n_clients: int, global_lr: float = 1.0, **kwargs) -> Strategy:
    """The project's SCAFFOLD strategy (`tenfold.federated.strategies`): FedAvg's sampling plus the server control
    variate c; `kwargs` go to `FedAvg`. Clients need `scaffold_mod` (and `local_sgd(..., correction=...)`)."""
    from tenfold.federated.strategies import _scaffold_class

    check_positive("n_clients", n_clients)
    check_positive("global_lr", global_lr)
    return _scaffold_class()(n_clients=n_clients, global_lr=global_lr, **kwargs)


# ----------------------------------------------------------------------------- server: the FedInit wrapper
class FedInit(Strategy):
    """FedInit's server half: wraps any Flower `Strategy` (FedAvg, FedProx, FedAdam, `make_scaffold`, ...).

    Pair it with `fedinit_mod` on the clients. Each round it adds to the train config `fedinit-beta`, the upload
    mode and, when given, `lr` (decayed per round), `weight-decay` and `clip-norm` (read by `local_sgd`); it sends
    w^0 along to nodes that have not yet replied successfully (first_visit="initial"); and it aggregates through
    the wrapped strategy, unweighted or weighted by its own `weighted_by_key`. With beta = 0 and
    weighting="examples", the aggregated arrays equal the wrapped strategy's bit for bit.

    Parameters
    ----------
    strategy : flwr.serverapp.strategy.Strategy
        The strategy to wrap. FedProx needs nothing more: the client's proximal anchor is the arrays it receives,
        which under `fedinit_mod` is the relaxed start, as in FL-Simulator.
    beta : float, default=0.1
        Relaxation, 0 <= beta < 1; 0 = the wrapped strategy.
    first_visit : {"initial", "global"}, default="initial"
        Start of a node with no last model: "initial" = w^t + beta (w^t - w^0), as FL-Simulator (which sets every
        client's last model to w^0; costs one extra download per node, once); "global" = w^t.
    weighting : {"uniform", "examples"}, default="uniform"
        "uniform" = plain mean of the replies (FL-Simulator); "examples" = the wrapped strategy's own weighting
        (its `weighted_by_key`, "num-examples" by default).
    upload : {"delta", "model"}, default="delta"
        Clients reply with w^t + (w_K - start), so the average is w^t + mean update (FL-Simulator), or with w_K.
    lr : float or None, default=None
        Local learning rate sent as config "lr"; None = the train config's own "lr", if any.
    lr_decay : float, default=1.0
        lr at round t = lr * lr_decay ** (t - 1) (FL-Simulator: 0.998).
    weight_decay : float or None, default=None
        Sent as "weight-decay" (FL-Simulator: 1e-3).
    clip : float or None, default=None
        Gradient-norm clip sent as "clip-norm" (FL-Simulator: 10).
    divergence : bool, default=False
        Clients also return w_K and the round's metrics get `fedinit-divergence` = mean_i ||w_K,i - w^{t+1}||^2
        (FL-Simulator's consistency measure; costs one extra upload per client).

    Attributes
    ----------
    initial_arrays : ArrayRecord or None
        w^0, the arrays of the first `configure_train` call.
    seen_nodes : set of int
        Nodes that have replied successfully (they hold a last model).

    Examples
    --------
    >>> from flwr.serverapp.strategy import FedAvg
    >>> strategy = FedInit(FedAvg(fraction_evaluate=0.0), beta=0.1, lr=0.1, lr_decay=0.998, clip=10.0)
    >>> strategy.beta, strategy.weighting
    (0.1, 'uniform')
    """

    def __init__(self, strategy: Strategy, *, beta: float = 0.1, first_visit: str = "initial",
                 weighting: str = "uniform", upload: str = "delta", lr: float | None = None, lr_decay: float = 1.0,
                 weight_decay: float | None = None, clip: float | None = None, divergence: bool = False) -> None:
        if not isinstance(strategy, Strategy):
            raise UserError(f"Invalid strategy: {type(strategy).__name__}; expected a flwr.serverapp.strategy."
                            "Strategy such as FedAvg(...)")
        if not 0.0 <= beta < 1.0:
            raise UserError(f"Invalid beta: {beta!r}; expected 0 <= beta < 1")
        check_choice("first_visit", first_visit, ("initial", "global"))
        check_choice("weighting", weighting, ("uniform", "examples"))
        check_choice("upload", upload, ("delta", "model"))
        if lr is not None:
            check_positive("lr", lr)
        check_positive("lr_decay", lr_decay)
        if weight_decay is not None:
            check_positive("weight_decay", weight_decay, allow_zero=True)
        if clip is not None:
            check_positive("clip", clip)
        if weighting == "uniform" and not hasattr(strategy, "weighted_by_key"):
            raise UserError(f"Invalid weighting: 'uniform' needs a strategy with `weighted_by_key` (FedAvg and its "
                            f"subclasses); {type(strategy).__name__} has none; use weighting='examples'")
        self.strategy = strategy
        self.beta, self.first_visit, self.weighting, self.upload = float(beta), first_visit, weighting, upload
        self.lr, self.lr_decay, self.weight_decay, self.clip = lr, lr_decay, weight_decay, clip
        self.divergence = bool(divergence)
        self.initial_arrays: ArrayRecord | None = None
        self.seen_nodes: set[int] = set()

    def __repr__(self) -> str:
        return f"FedInit({self.strategy!r}, beta={self.beta})"

    def summary(self) -> None:
        """Log the FedInit settings, then the wrapped strategy's."""
        log(INFO, "\t├──> FedInit: beta %s | first visit %s | weighting %s | upload %s | lr %s x %s^(t-1) | "
            "clip %s", self.beta, self.first_visit, self.weighting, self.upload, self.lr, self.lr_decay, self.clip)
        self.strategy.summary()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid):
        """Add FedInit's settings to a copy of the config, let the wrapped strategy sample, attach w^0 for new
        nodes."""
        cfg = ConfigRecord(dict(config))  # a copy: the caller reuses its config every round
        cfg[BETA_KEY], cfg[UPLOAD_KEY], cfg[REPORT_KEY] = self.beta, self.upload, self.divergence
        cfg[ARRAYS_KEY] = str(getattr(self.strategy, "arrayrecord_key", "arrays"))
        base_lr = self.lr if self.lr is not None else config.get("lr")
        if base_lr is not None:
            cfg["lr"] = float(base_lr) * self.lr_decay ** (server_round - 1)
        elif self.lr_decay != 1.0:
            raise UserError("Invalid lr_decay: it needs a learning rate; pass FedInit(lr=...) or put 'lr' in "
                            "the train config")
        if self.weight_decay is not None:
            cfg["weight-decay"] = float(self.weight_decay)
        if self.clip is not None:
            cfg["clip-norm"] = float(self.clip)
        messages = list(self.strategy.configure_train(server_round, arrays, cfg, grid))
        if self.initial_arrays is None:
            self.initial_arrays = ArrayRecord(dict(arrays.items()))
        if self.first_visit == "initial" and self.beta > 0:
            for m in messages:
                if m.metadata.dst_node_id not in self.seen_nodes:
                    # a new RecordDict per such node: the others keep sharing the strategy's one
                    m.content = RecordDict({**dict(m.content.items()), W0_KEY: self.initial_arrays})
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        """Pop the reported w_K, add the unit weights, delegate, then add the divergence."""
        replies = list(replies)
        ok = [m for m in replies if not m.has_error()]
        locals_ = [m.content.pop(LOCAL_KEY) for m in ok if LOCAL_KEY in m.content]
        self.seen_nodes.update(m.metadata.src_node_id for m in ok)
        if self.weighting == "examples":
            arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        else:
            for m in ok:
                if len(m.content.metric_records) == 1:  # several: the wrapped strategy reports the inconsistency
                    next(iter(m.content.metric_records.values()))[UNIT_KEY] = 1.0
            own_key = self.strategy.weighted_by_key
            self.strategy.weighted_by_key = UNIT_KEY
            try:
                arrays, metrics = self.strategy.aggregate_train(server_round, replies)
            finally:
                self.strategy.weighted_by_key = own_key
        if self.divergence and arrays is not None and locals_:
            new = arrays.to_torch_state_dict()
            metrics = metrics if metrics is not None else MetricRecord()
            dist = [sq_distance(r.to_torch_state_dict(), new) for r in locals_]
            metrics[DIVERGENCE_METRIC] = sum(dist) / len(dist)
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid):
        """The wrapped strategy's."""
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]):
        """The wrapped strategy's."""
        return self.strategy.aggregate_evaluate(server_round, replies)


# ----------------------------------------------------------------------------- local training
def local_sgd(model: nn.Module, batches, config, *, loss_fn: Callable = F.cross_entropy,
              correction: Mapping[str, torch.Tensor] | ArrayRecord | None = None) -> tuple[int, int]:
    """FL-Simulator's local loop, in place, for any `nn.Module` and any re-iterable of (x, y) batches.

    Per batch: loss = loss_fn(model(x), y) [+ mu/2 ||w - w_received||^2]; backward; grad += correction (SCAFFOLD);
    clip the gradient norm; SGD step with weight decay. w_received is the model's state at the call, so load the
    arrays the message brought (under `fedinit_mod`: the relaxed start) before calling.

    Parameters
    ----------
    model : nn.Module
        Trained in place, on its own device (batches are moved there).
    batches : iterable of (x, y)
        Iterated once per epoch: a DataLoader or a list (a one-shot iterator only for one epoch).
    config : ConfigRecord or mapping
        "lr" (required), "weight-decay" (default 0), "clip-norm" (default: no clipping), "local-epochs"
        (default 1), "proximal-mu" (FedProx; default 0).
    loss_fn : callable(output, y) -> scalar tensor, default=F.cross_entropy
    correction : mapping name -> tensor, ArrayRecord or None, default=None
        Added to the gradients of the named parameters (SCAFFOLD's c - c_i, from `scaffold_mod`).

    Returns
    -------
    steps : int
        Optimiser steps K (report it as "num-steps" for `scaffold_mod`).
    examples : int
        Samples in one epoch (report it as "num-examples").

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(3, 2)
    >>> data = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))] * 2
    >>> local_sgd(model, data, {"lr": 0.1, "local-epochs": 2, "clip-norm": 10.0})
    (4, 8)
    """
    if "lr" not in config:
        raise UserError("Invalid config: no 'lr'; expected the local learning rate (FedInit(lr=...) sends it)")
    lr, wd = float(config["lr"]), float(config.get("weight-decay", 0.0))
    clip, mu = config.get("clip-norm"), float(config.get("proximal-mu", 0.0))
    epochs = int(config.get("local-epochs", 1))
    check_positive("lr", lr)
    check_positive("weight-decay", wd, allow_zero=True)
    check_positive("proximal-mu", mu, allow_zero=True)
    check_positive("local-epochs", epochs)
    if clip is not None:
        check_positive("clip-norm", float(clip))
    if epochs > 1 and iter(batches) is batches:
        raise UserError(f"Invalid batches: a one-shot iterator cannot be replayed for local-epochs={epochs}; "
                        "pass a list or a DataLoader")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    device = params[0].device if params else torch.device("cpu")
    anchor = {n: p.detach().clone() for n, p in named} if mu > 0 else None
    if isinstance(correction, ArrayRecord):
        correction = correction.to_torch_state_dict()
    corr = ({n: correction[n].to(p) for n, p in named if n in correction} if correction is not None else {})
    opt = torch.optim.SGD(params, lr=lr, weight_decay=wd)
    model.train()
    steps = examples = 0
    for epoch in range(epochs):
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            if anchor is not None:
                loss = loss + 0.5 * mu * sum((p - anchor[n]).pow(2).sum() for n, p in named)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for n, p in named:
                if n in corr and p.grad is not None:
                    p.grad.add_(corr[n])
            if clip is not None:
                nn.utils.clip_grad_norm_(params, float(clip))
            opt.step()
            steps += 1
            examples += len(y) if epoch == 0 else 0
    return steps, examples
