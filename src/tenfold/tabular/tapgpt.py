"""TAP-GPT: a tabular-LLM few-shot classifier with feature selection, LoRA tuning and NaN-as-text missingness.

Paper: S. Kearney et al., "Enabling Few-Shot Alzheimer's Disease Diagnosis on Biomarker Data with Tabular
LLMs" (ACM-BCB 2025, arXiv 2507.23227) and its journal version "Tabular LLMs for Interpretable Few-Shot
Alzheimer's Disease Prediction with Multimodal Biomedical Data" (arXiv 2603.17191). Reference code:
github.com/sophie-kearney/TAP-GPT (read, not copied).

Implemented: top-p feature ranking by |coef| of a standardised L2 logistic regression (NaN -> 0 for the
ranking only, as the reference), k-shot prompts drawn per query from an in-context pool with at least one
positive example (see `tenfold.tabular.prompts`), chat-template wrapping, PEFT LoRA tuning with the loss on
the answer token only (`LoraConfig(r, lora_alpha=2r, target_modules="all-linear", lora_dropout=0.1)`, AdamW,
warmup then cosine decay, gradient accumulation), `predict_proba` from the next-token probabilities of the
label tokens "0" and "1", greedy generation with a parser that counts unparsable outputs, an optional short
rationale, resumable tuning and `save`/`load` of the adapter.

Speed (ours, exact): every prompt is (prefix, suffix), where the prefix (chat-template start, frame,
instruction, table header and the k example rows) does not depend on the query. Queries that share their
examples (`shot_sets`) share one prefix forward pass; its key/value state is expanded over a batch of
right-padded query suffixes (`predict_batch_size`), and only the last real position of each goes through the
LM head. LoRA steps do the same with gradients flowing back through the shared prefix, so the loss and its
gradient equal those of separate full prompts (tested to float tolerance). Not implemented: 4-bit QLoRA
(bitsandbytes needs CUDA; `quantization="4bit"` is refused, we tune fp32 LoRA), the TableGPT2-7B backbone
(we use SmolLM2-135M-Instruct), the multi-agent self-reflection study, and more than two classes.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

import tenfold
from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.errors import UserError, check_choice
from tenfold.tabular.prompts import STYLES, build_prompt_parts, instruction, parse_label, sample_shots

MODELS = ("smollm2", "tiny-debug")
LABEL_TOKENS = ("0", "1")      # classes_[0] is written as "0", classes_[1] as "1" (binary only)
REASONING = (" Then give a one-sentence rationale that names the features that drove the answer.")
QUANTIZATION = (None, "4bit")
_SENTINEL = "\x00tenfold-user-content\x00"


# ------------------------------------------------------------------------------------------------ helpers
def load_backbone(name: str, seed: int = 0):
    """(causal LM, tokenizer) for a registered backbone name.

    "smollm2" is SmolLM2-135M-Instruct from the offline cache; "tiny-debug" is a randomly initialised
    2-layer Llama (hidden 32) on SmolLM2's tokenizer, built under `torch.manual_seed(seed)`, for tests.
    """
    check_choice("model", name, MODELS)
    from tenfold.models.pretrained import smollm2, smollm2_tokenizer

    if name == "smollm2":
        model, tok = smollm2()
    else:
        from tenfold.models.hf_tiny import tiny_llama

        tok = smollm2_tokenizer()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model, _ = tiny_llama("debug", vocab_size=len(tok), max_position_embeddings=4096)
    model.config.use_cache = False
    return model, tok


def rank_features(X: pd.DataFrame, y: np.ndarray, random_state: int | None = None) -> list[str]:
    """Columns of X ordered by decreasing |coef| of StandardScaler + L2 LogisticRegression(liblinear).

    Categorical columns are one-hot encoded for the fit and ranked by their largest |coef|; NaN is set to 0
    for the ranking only (the reference's choice), never in prompts.

    Parameters
    ----------
    X : DataFrame of shape (n, d)
    y : ndarray of shape (n,)

    Returns
    -------
    list of str, length d
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    parts, owner = [], []
    for c in X.columns:
        col = X[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            parts.append(col.astype("float64").to_numpy()[:, None]); owner.append(c)
        else:
            d = pd.get_dummies(col.astype("string"), dtype="float64")
            parts.append(d.to_numpy()); owner.extend([c] * d.shape[1])
    Z = np.nan_to_num(np.concatenate(parts, 1), nan=0.0)
    Z = StandardScaler().fit_transform(Z)
    coef = np.abs(LogisticRegression(solver="liblinear", max_iter=5000, random_state=random_state).fit(Z, y).coef_.ravel())
    score = pd.Series(coef, index=owner).groupby(level=0, sort=False).max()
    return list(score.sort_values(ascending=False, kind="stable").index)


def split_pool(y01: np.ndarray, pool_size: float | int, random_state: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(rest, pool) row positions: a stratified split of a binary label vector, as `TAPGPTClassifier.fit` does.

    Parameters
    ----------
    y01 : ndarray of shape (n,), values in {0, 1}
    pool_size : float in (0, 1) or int in [1, n)
    random_state : int or None

    Returns
    -------
    rest, pool : sorted int ndarrays, disjoint, covering range(n)
    """
    from sklearn.model_selection import train_test_split

    n = len(y01)
    if isinstance(pool_size, (float, np.floating)) and 0 < pool_size < 1:
        n_pool = max(1, int(round(pool_size * n)))
    elif isinstance(pool_size, (int, np.integer)) and not isinstance(pool_size, bool) and 1 <= pool_size < n:
        n_pool = int(pool_size)
    else:
        raise UserError(f"Invalid pool_size: {pool_size!r}; expected a fraction in (0, 1) or a row count in [1, {n - 1}]")
    rest, pool = train_test_split(np.arange(n), test_size=n_pool, stratify=y01,
                                  random_state=0 if random_state is None else int(random_state))
    return np.sort(rest), np.sort(pool)


def _check_frame(name: str, X: Any) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise UserError(f"Invalid {name}: expected a pandas DataFrame (column names become table headers), "
                        f"got {type(X).__name__}")
    if X.shape[0] == 0:
        raise UserError(f"Invalid {name}: no rows")
    return X


def _lora_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


# -------------------------------------------------------------------------------------------- estimator
class TAPGPTClassifier(BaseEstimator, ClassifierMixin):
    """Few-shot binary classifier that reads tables through a causal LLM (TAP-GPT), optionally LoRA-tuned.

    `fit` ranks features, splits off a stratified in-context pool, and (when `lora_steps` > 0) tunes LoRA
    adapters on prompts built from the remaining rows: each prompt holds `k` pool rows plus the training row
    with its label masked, and the loss is the cross-entropy of the answer token only. `predict_proba`
    builds the same prompt for each query (pool examples drawn per query, or from `shot_sets` shared draws)
    and returns the softmax over the two label tokens' next-token logits from one forward pass (no
    generation); queries sharing a draw share a cached prompt prefix. `predict` takes the arg-max. Missing
    cells stay ``NaN`` in the text.

    Parameters
    ----------
    model : {"smollm2", "tiny-debug"}, default="smollm2"
        Backbone LLM (see `load_backbone`).
    k : int, default=4
        In-context examples per prompt (the reference's default); 0 = zero-shot.
    n_features : int or None, default=16
        Top-p features kept by the logistic-regression ranking; None keeps all columns.
    prompt_style : {"table", "markdown", "text"}, default="table"
        "table" = ``to_string`` text table (TAP-GPT), "text" = "feature is value" serialisation.
    label_name : str, default="label"
        Header of the label column in prompts.
    task : str, default=""
        Optional one-sentence data-set description prepended to the instruction.
    pool_size : float or int, default=0.25
        In-context pool taken from the training rows: a fraction, or a row count.
    min_positive : int, default=1
        Positive examples guaranteed in each k-shot sample.
    decimals : int or None, default=3
        Float cells rounded in prompts (None: pandas' default formatting).
    chat_template : bool, default=True
        Wrap the prompt as a user turn of the tokenizer's chat template (if it has one).
    lora_steps : int, default=0
        Optimiser steps of LoRA tuning (0 = use the backbone as is).
    lora_r : int, default=8
        LoRA rank; alpha is 2r, dropout `lora_dropout`, targets all linear layers (reference settings).
    lora_dropout : float, default=0.1
    learning_rate : float, default=2e-4
        Peak AdamW learning rate (linear warmup over `warmup_ratio` of the steps, then cosine to 0).
    batch_size : int, default=4
        Prompts per optimiser step (gradient accumulation over single prompts).
    weight_decay : float, default=1e-3
    warmup_ratio : float, default=0.03
    max_length : int, default=4096
        Longest tokenised prompt accepted; longer ones raise (lower n_features or k).
    shot_sets : int or None, default=None
        None: a fresh k-shot draw for every prompt (the reference). An integer m: `predict_proba` draws m
        example sets per call and query i uses set i mod m, and each LoRA step's batch shares one fresh draw;
        prompts sharing a draw share their prefix, computed once (ours; a speed/variance trade-off).
    predict_batch_size : int, default=16
        Query suffixes scored together on one cached prefix (memory grows with it; results do not).
    tune_batch_size : int, default=2
        Suffixes per forward/backward pass within a LoRA step (memory only; the gradient is the same).
    quantization : {None, "4bit"}, default=None
        "4bit" (the paper's QLoRA, NF4 through bitsandbytes) needs a CUDA GPU and is refused with an error:
        tenfold runs on CPU and tunes fp32 LoRA adapters.
    random_state : int or None, default=None
        Seeds the pool split, example draws, LoRA init, dropout and batch order.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    feature_names_in_ : ndarray of shape (n_features_in_,)
    features_ : list of str, length p
        Selected columns in ranking order.
    pool_X_ : DataFrame of shape (n_pool, p)
    pool_y_ : ndarray of shape (n_pool,), values in {0, 1}
    pool_index_ : ndarray of shape (n_pool,)
        Positions in the fit-time X of the pool rows.
    tune_index_ : ndarray of shape (n - n_pool,)
    lora_losses_ : list of float, length lora_steps
        Mean answer-token cross-entropy per step.
    model_, tokenizer_ : the (LoRA-wrapped) LLM and its tokenizer.

    References
    ----------
    Kearney et al., arXiv 2507.23227 (2025); arXiv 2603.17191 (2026).

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> X = pd.DataFrame({"tau": np.linspace(0, 1, 24), "age": np.arange(60, 84)}); y = np.arange(24) % 2
    >>> clf = TAPGPTClassifier(model="tiny-debug", k=2, n_features=None, random_state=0).fit(X, y)
    >>> clf.predict_proba(X.iloc[:3]).shape
    (3, 2)
    """

    def __init__(self, *, model: str = "smollm2", k: int = 4, n_features: int | None = 16,
                 prompt_style: str = "table", label_name: str = "label", task: str = "",
                 pool_size: float | int = 0.25, min_positive: int = 1, decimals: int | None = 3,
                 chat_template: bool = True, lora_steps: int = 0, lora_r: int = 8, lora_dropout: float = 0.1,
                 learning_rate: float = 2e-4, batch_size: int = 4, weight_decay: float = 1e-3,
                 warmup_ratio: float = 0.03, max_length: int = 4096, shot_sets: int | None = None,
                 predict_batch_size: int = 16, tune_batch_size: int = 2, quantization: str | None = None,
                 random_state: int | None = None):
        self.model = model
        self.k = k
        self.n_features = n_features
        self.prompt_style = prompt_style
        self.label_name = label_name
        self.task = task
        self.pool_size = pool_size
        self.min_positive = min_positive
        self.decimals = decimals
        self.chat_template = chat_template
        self.lora_steps = lora_steps
        self.lora_r = lora_r
        self.lora_dropout = lora_dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.max_length = max_length
        self.shot_sets = shot_sets
        self.predict_batch_size = predict_batch_size
        self.tune_batch_size = tune_batch_size
        self.quantization = quantization
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------- checks
    def _check_params(self) -> None:
        check_choice("model", self.model, MODELS)
        check_choice("prompt_style", self.prompt_style, STYLES)
        check_choice("quantization", self.quantization, QUANTIZATION)
        if self.quantization == "4bit":
            raise UserError("Invalid quantization: '4bit' (QLoRA: NF4 weights through bitsandbytes) needs a CUDA GPU, "
                            "which tenfold does not use; TAP-GPT here runs on CPU with fp32 LoRA: use quantization=None")
        if self.shot_sets is not None and (not isinstance(self.shot_sets, (int, np.integer))
                                           or isinstance(self.shot_sets, bool) or self.shot_sets < 1):
            raise UserError(f"Invalid shot_sets: {self.shot_sets!r}; expected None (a draw per prompt) or an integer >= 1")
        ints = {"k": (self.k, 0), "min_positive": (self.min_positive, 0), "lora_steps": (self.lora_steps, 0),
                "lora_r": (self.lora_r, 1), "batch_size": (self.batch_size, 1), "max_length": (self.max_length, 16),
                "predict_batch_size": (self.predict_batch_size, 1), "tune_batch_size": (self.tune_batch_size, 1)}
        for name, (v, lo) in ints.items():
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise UserError(f"Invalid {name}: {v!r}; expected an integer >= {lo}")
        if self.n_features is not None and (not isinstance(self.n_features, (int, np.integer)) or self.n_features < 1):
            raise UserError(f"Invalid n_features: {self.n_features!r}; expected an integer >= 1 or None (all)")
        if self.decimals is not None and (not isinstance(self.decimals, int) or self.decimals < 0):
            raise UserError(f"Invalid decimals: {self.decimals!r}; expected an integer >= 0 or None")
        for name in ("learning_rate",):
            if not getattr(self, name) > 0:
                raise UserError(f"Invalid {name}: {getattr(self, name)!r}; expected a number > 0")
        for name, v in (("lora_dropout", self.lora_dropout), ("warmup_ratio", self.warmup_ratio)):
            if not 0 <= v < 1:
                raise UserError(f"Invalid {name}: {v!r}; expected 0 <= {name} < 1")
        if self.weight_decay < 0:
            raise UserError(f"Invalid weight_decay: {self.weight_decay!r}; expected >= 0")
        if not isinstance(self.label_name, str) or not self.label_name:
            raise UserError(f"Invalid label_name: {self.label_name!r}; expected a non-empty string")

    # ------------------------------------------------------------------------------------------ prompts
    def _parts(self, shots: np.ndarray, query: pd.DataFrame, reasoning: bool = False) -> tuple[str, str]:
        """(prefix, suffix) text of the prompt for one query row with the pool rows `shots` as examples."""
        prefix, suffix = build_prompt_parts(self.pool_X_.iloc[shots], self.pool_y_[shots], query[self.features_],
                                            self.label_name, style=self.prompt_style, decimals=self.decimals,
                                            task=self.task)
        if reasoning:   # same table, an instruction that asks for a rationale after the label
            base = instruction(self.label_name, self.k, self.prompt_style, self.task)
            prefix = prefix.replace(base, base.replace("Respond only with 1 or 0.", "Respond first with 1 or 0.")
                                    + REASONING, 1)
        return prefix, suffix

    def _encode_parts(self, prefix: str, suffix: str) -> tuple[list[int], list[int]]:
        """Token ids of (chat-template start + prefix, suffix + chat-template end), tokenised separately so that
        every query with this prefix gets the same prefix ids (the text equals the templated whole prompt)."""
        tok = self.tokenizer_
        if self.chat_template and getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": _SENTINEL}], add_generation_prompt=True,
                                           tokenize=False)
            before, after = text.split(_SENTINEL)
            p = tok(before + prefix, add_special_tokens=False)["input_ids"]
        else:
            p, after = tok(prefix, add_special_tokens=True)["input_ids"], ""
        q = tok(suffix + after, add_special_tokens=False)["input_ids"]
        if len(p) + len(q) > self.max_length:
            raise UserError(f"Prompt has {len(p) + len(q)} tokens > max_length={self.max_length}; "
                            "lower n_features or k")
        return p, q

    def _plan(self, X: pd.DataFrame, reasoning: bool = False) -> list[tuple[list[int], str, list]]:
        """Groups of queries sharing a prefix: [(prefix ids, prefix text, [(row, suffix ids, suffix text)])].

        Draws come from a generator seeded by `random_state`: one per row (``shot_sets=None``), or m sets with
        row i on set i mod m; so every call, and every arm of an experiment, shows a row the same examples."""
        rng = np.random.default_rng([self._seed, 1])
        n = len(X)
        m = n if self.shot_sets is None else min(self.shot_sets, n)
        draws = [sample_shots(self.pool_y_, self.k, rng, self.min_positive) for _ in range(m)]
        groups = []
        for g in range(m):
            rows = list(range(g, n, m))
            texts = [self._parts(draws[g], X.iloc[[i]], reasoning) for i in rows]
            ids = [self._encode_parts(*t) for t in texts]
            groups.append((ids[0][0], texts[0][0], [(i, q, t[1]) for i, (_, q), t in zip(rows, ids, texts)]))
        return groups

    def _prefix_kv(self, prefix: list[int]):
        """(decoder, LM head, per-layer (key, value) of the prefix, each (1, kv_heads, T_prefix, head_dim))."""
        base = self.model_.get_base_model() if hasattr(self.model_, "get_base_model") else self.model_
        body, head = base.get_decoder(), base.get_output_embeddings()
        pre = body(input_ids=torch.tensor([prefix], dtype=torch.long), use_cache=True).cache
        return body, head, [(layer.keys, layer.values) for layer in pre.layers]

    def _suffix_logits(self, body, head, kv, chunk: list[list[int]]) -> torch.Tensor:
        """Next-token logits (n, vocab) after the cached prefix `kv` + each of the n right-padded suffixes."""
        from transformers import DynamicCache

        n, width = len(chunk), max(len(q) for q in chunk)
        ids = torch.full((n, width), self.tokenizer_.eos_token_id or 0, dtype=torch.long)   # (n, T_suffix)
        for j, q in enumerate(chunk):
            ids[j, :len(q)] = torch.tensor(q)
        cache = DynamicCache(ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in kv])
        h = body(input_ids=ids, cache=cache, use_cache=True).last_hidden_state          # (n, T_suffix, d)
        return head(h[torch.arange(n), torch.tensor([len(q) - 1 for q in chunk])])       # (n, vocab)

    def _forward_group(self, prefix: list[int], suffixes: list[list[int]]) -> torch.Tensor:
        """Next-token logits after each prefix + suffix, shape (len(suffixes), vocab).

        The prefix runs once; its per-layer key/value tensors (1, kv_heads, T_prefix, head_dim) are expanded to
        each batch of `predict_batch_size` right-padded suffixes (n, T_suffix). Causal attention keeps every
        real token blind to the padding after it, and only each row's last real position goes through the LM
        head."""
        body, head, kv = self._prefix_kv(prefix)
        bs = self.predict_batch_size
        return torch.cat([self._suffix_logits(body, head, kv, suffixes[c:c + bs]) for c in range(0, len(suffixes), bs)])

    def _backward_group(self, prefix: list[int], suffixes: list[list[int]], targets: torch.Tensor,
                        scale: float) -> float:
        """Backpropagate ``scale * sum_i CE(logits_i, targets_i)`` over prefix + suffix_i; returns the loss.

        The prefix runs forward once with autograd; the suffixes run in chunks of `tune_batch_size` on detached
        copies of its key/value tensors, whose gradients add up over the chunks and then flow back through the
        prefix once. The gradient equals that of the separate full prompts (tested); memory holds the prefix's
        activations plus one chunk's, not the whole batch's."""
        body, head, kv = self._prefix_kv(prefix)
        leaves = [(k.detach().requires_grad_(), v.detach().requires_grad_()) for k, v in kv]
        total, bs = 0.0, self.tune_batch_size
        for c in range(0, len(suffixes), bs):
            z = self._suffix_logits(body, head, leaves, suffixes[c:c + bs])
            loss = torch.nn.functional.cross_entropy(z, targets[c:c + bs], reduction="sum") * scale
            loss.backward()
            total += float(loss.detach())
        roots = [(t, leaf.grad) for pair, lp in zip(kv, leaves) for t, leaf in zip(pair, lp) if leaf.grad is not None]
        if roots:
            torch.autograd.backward([t for t, _ in roots], [g for _, g in roots])
        return total

    def prompts(self, X: pd.DataFrame) -> list[str]:
        """The prompt text for each row of X (before the chat template), as `predict_proba` builds them."""
        check_is_fitted(self, "features_")
        X = self._check_X(X)
        out = [""] * len(X)
        for _, prefix, rows in self._plan(X):
            for i, _, suffix in rows:
                out[i] = prefix + suffix
        return out

    # ------------------------------------------------------------------------------------------------ fit
    @property
    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def fit(self, X: pd.DataFrame, y, *, checkpoint_dir: str | Path | None = None, checkpoint_every: int = 10,
            callback: Callable[[int, float], None] | None = None) -> "TAPGPTClassifier":
        """Rank features, split off the in-context pool, and LoRA-tune when `lora_steps` > 0.

        Parameters
        ----------
        X : DataFrame of shape (n, d)
        y : array-like of shape (n,), exactly two distinct labels
        checkpoint_dir : path or None
            When given, LoRA tuning saves a resumable checkpoint there every `checkpoint_every` steps and
            resumes from one it finds (bit-identical continuation on CPU).
        callback : callable(step, loss) or None
            Called after each optimiser step (e.g. progress, or to interrupt a run).

        Returns
        -------
        self
        """
        self._check_params()
        X = _check_frame("X", X)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise UserError(f"Invalid y: expected shape ({len(X)},), got {y.shape}")
        classes = np.unique(y)
        if len(classes) != 2:
            raise UserError(f"Invalid y: {len(classes)} distinct labels; TAPGPTClassifier supports exactly 2 "
                            "classes (answers 0 and 1)")
        if self.n_features is not None and self.n_features > X.shape[1]:
            raise UserError(f"Invalid n_features: {self.n_features} > the {X.shape[1]} columns of X")
        if self.label_name in X.columns:
            raise UserError(f"Invalid label_name: {self.label_name!r} is also a column of X")
        y01 = (y == classes[1]).astype(np.int64)
        rest, pool = split_pool(y01, self.pool_size, self._seed)
        if self.k > len(pool):
            raise UserError(f"Invalid k: {self.k} > the in-context pool of {len(pool)} rows; raise pool_size or lower k")
        if y01[pool].sum() < min(self.min_positive, self.k):
            raise UserError(f"Invalid min_positive: {self.min_positive}; the pool has {y01[pool].sum()} positives")
        self.classes_ = classes
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        # the ranking is fitted on the non-pool rows (the reference ranks on its training split)
        fit_rows = rest if len(np.unique(y01[rest])) == 2 else np.arange(len(X))
        ranked = rank_features(X.iloc[fit_rows], y01[fit_rows], self.random_state)
        self.features_ = ranked[: self.n_features] if self.n_features is not None else list(X.columns)
        self.pool_index_, self.tune_index_ = pool, rest
        self.pool_X_ = X.iloc[self.pool_index_][self.features_].reset_index(drop=True)
        self.pool_y_ = y01[self.pool_index_]
        self.model_, self.tokenizer_ = load_backbone(self.model, self._seed)
        self.label_token_ids_ = self._label_ids()
        self.lora_losses_ = []
        if self.lora_steps > 0:
            self._wrap_lora()
            self._tune(X.iloc[self.tune_index_], y01[self.tune_index_], checkpoint_dir, checkpoint_every, callback)
        self.model_.eval()
        return self

    def _label_ids(self) -> list[int]:
        ids = []
        for t in LABEL_TOKENS:
            enc = self.tokenizer_.encode(t, add_special_tokens=False)
            if len(enc) != 1:
                raise UserError(f"The tokenizer splits the label {t!r} into {len(enc)} tokens; need one")
            ids.append(enc[0])
        return ids

    def _lora_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=2 * self.lora_r, target_modules="all-linear",
                          lora_dropout=self.lora_dropout, bias="none", task_type="CAUSAL_LM")

    def _wrap_lora(self) -> None:
        from peft import get_peft_model

        with torch.random.fork_rng():          # adapter init depends on random_state only
            torch.manual_seed(self._seed + 1)
            self.model_ = get_peft_model(self.model_, self._lora_config())

    def _schedule(self, step: int) -> float:
        warm = max(1, math.ceil(self.warmup_ratio * self.lora_steps)) if self.warmup_ratio > 0 else 0
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, self.lora_steps - warm)))

    def _tune(self, X: pd.DataFrame, y01: np.ndarray, checkpoint_dir, every: int, callback) -> None:
        with torch.random.fork_rng():      # dropout draws come from a stream seeded by random_state only
            torch.manual_seed(self._seed + 2)
            params = [p for p in self.model_.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=self.weight_decay)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, self._schedule)
            ckpt = Path(checkpoint_dir) / "tapgpt_lora.pt" if checkpoint_dir is not None else None
            start = 0
            if ckpt is not None:
                state = load_checkpoint(ckpt)          # restores the RNG states (dropout) too
                if state is not None:
                    if state["params"] != self._ckpt_params():
                        raise UserError(f"Checkpoint {ckpt} was written with other parameters; remove it to start over")
                    self.model_.load_state_dict(state["lora"], strict=False)
                    opt.load_state_dict(state["optimizer"]); sched.load_state_dict(state["scheduler"])
                    start, self.lora_losses_ = state["step"], list(state["losses"])
            self.model_.train()
            lab = torch.tensor(self.label_token_ids_)
            for step in range(start, self.lora_steps):
                # batch order and in-context draws depend on (seed, step) only, so a resumed run sees the same data
                rng = np.random.default_rng([self._seed, 2, step])
                rows = rng.choice(len(X), self.batch_size, replace=len(X) < self.batch_size)
                if self.shot_sets is None:       # a draw per prompt (reference) or one shared by the batch
                    groups = [(sample_shots(self.pool_y_, self.k, rng, self.min_positive), [int(r)]) for r in rows]
                else:
                    groups = [(sample_shots(self.pool_y_, self.k, rng, self.min_positive), [int(r) for r in rows])]
                opt.zero_grad(set_to_none=True)
                total = 0.0
                for shots, rs in groups:
                    ids = [self._encode_parts(*self._parts(shots, X.iloc[[r]])) for r in rs]
                    total += self._backward_group(ids[0][0], [q for _, q in ids], lab[y01[rs]], 1.0 / self.batch_size)
                opt.step(); sched.step()
                self.lora_losses_.append(total)
                if ckpt is not None and ((step + 1) % every == 0 or step + 1 == self.lora_steps):
                    save_checkpoint(ckpt, lora=_lora_state(self.model_), optimizer=opt.state_dict(),
                                    scheduler=sched.state_dict(), step=step + 1, losses=list(self.lora_losses_),
                                    params=self._ckpt_params())
                if callback is not None:
                    callback(step + 1, total)

    def _ckpt_params(self) -> dict:
        return {k: v for k, v in self.get_params().items()}

    # ------------------------------------------------------------------------------------------ predict
    def _check_X(self, X) -> pd.DataFrame:
        X = _check_frame("X", X)
        missing = [c for c in self.features_ if c not in X.columns]
        if missing:
            raise UserError(f"Invalid X: missing selected feature columns {missing[:5]}")
        return X

    @torch.no_grad()
    def _label_logits(self, X: pd.DataFrame, progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "features_")
        X = self._check_X(X)
        self.model_.eval()
        out, mass, greedy_ok = np.zeros((len(X), 2)), np.zeros(len(X)), np.zeros(len(X), bool)
        groups = self._plan(X)
        bar = None if progress is None else iter(progress(range(len(X))))
        for prefix, _, rows in groups:
            logits = self._forward_group(prefix, [q for _, q, _ in rows]).double()    # (n_group, vocab)
            p = logits.softmax(-1)
            idx = [i for i, _, _ in rows]
            out[idx] = logits[:, self.label_token_ids_].numpy()
            mass[idx] = p[:, self.label_token_ids_].sum(-1).numpy()
            greedy_ok[idx] = np.isin(logits.argmax(-1).numpy(), self.label_token_ids_)
            for _ in rows:
                if bar is not None:
                    next(bar, None)
        return out, mass, greedy_ok

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities from the label tokens: softmax over the logits of "0" and "1".

        Parameters
        ----------
        X : DataFrame of shape (n, d) with the fit-time columns (at least the selected ones)

        Returns
        -------
        ndarray of shape (n, 2)
            Columns follow `classes_`.
        """
        z, _, _ = self._label_logits(X)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def predict_details(self, X: pd.DataFrame, progress=None) -> dict[str, np.ndarray]:
        """`proba` (n, 2), `label_mass` (n,): p("0") + p("1") over the whole vocabulary, and
        `greedy_is_label` (n,): whether the greedy next token is a label token (else generation would not
        start with an answer)."""
        z, mass, ok = self._label_logits(X, progress)
        z = z - z.max(1, keepdims=True)
        return {"proba": np.exp(z) / np.exp(z).sum(1, keepdims=True), "label_mass": mass, "greedy_is_label": ok}

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Arg-max class of `predict_proba`, shape (n,)."""
        return self.classes_[self.predict_proba(X).argmax(1)]

    @torch.no_grad()
    def generate(self, X: pd.DataFrame, *, reasoning: bool = False, max_new_tokens: int | None = None) -> list[dict]:
        """Greedy generations parsed to labels; unparsable outputs are reported, never mapped to a class.

        Parameters
        ----------
        X : DataFrame of shape (n, d)
        reasoning : bool, default=False
            Ask for the label followed by a one-sentence rationale (structured reasoning output).
        max_new_tokens : int or None
            Defaults to 4 (label only) or 64 (with reasoning).

        Returns
        -------
        list of n dicts
            {"text": str, "label": class or None, "parsed": bool}
        """
        check_is_fitted(self, "features_")
        X = self._check_X(X)
        n_new = max_new_tokens or (64 if reasoning else 4)
        self.model_.eval()
        out = [None] * len(X)
        for prefix, _, rows in self._plan(X, reasoning):
            for i, q, _ in rows:
                ids = torch.tensor([prefix + q], dtype=torch.long)
                gen = self.model_.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                                           do_sample=False, use_cache=True, pad_token_id=self.tokenizer_.eos_token_id)
                text = self.tokenizer_.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
                lab = parse_label(text)
                out[i] = {"text": text, "label": None if lab is None else self.classes_[lab], "parsed": lab is not None}
        return out

    # ----------------------------------------------------------------------------------------- persist
    def save(self, path: str | Path) -> Path:
        """Write the config, the fitted state and the LoRA adapter weights into folder `path`."""
        check_is_fitted(self, "features_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"params": self.get_params(), "version": tenfold.__version__},
                                                     indent=1, default=str))
        lora = _lora_state(self.model_) if self.lora_steps > 0 else {}
        save_checkpoint(path / "state.pt", lora=lora, classes=self.classes_, features=self.features_,
                        feature_names_in=self.feature_names_in_, pool_X=self.pool_X_, pool_y=self.pool_y_,
                        pool_index=self.pool_index_, tune_index=self.tune_index_, losses=self.lora_losses_)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TAPGPTClassifier":
        """Rebuild a classifier saved with `save` (the backbone is reloaded from its registered name)."""
        path = Path(path)
        if not (path / "config.json").exists() or not (path / "state.pt").exists():
            raise UserError(f"Invalid path: {path} holds no saved TAPGPTClassifier (config.json, state.pt)")
        meta = json.loads((path / "config.json").read_text())
        if meta.get("version") != tenfold.__version__:
            warnings.warn(f"saved with tenfold {meta.get('version')}, loading with {tenfold.__version__}")
        self = cls(**meta["params"])
        st = load_checkpoint(path / "state.pt", restore_rng=False)
        self.classes_, self.features_ = st["classes"], st["features"]
        self.feature_names_in_, self.n_features_in_ = st["feature_names_in"], len(st["feature_names_in"])
        self.pool_X_, self.pool_y_ = st["pool_X"], st["pool_y"]
        self.pool_index_, self.tune_index_, self.lora_losses_ = st["pool_index"], st["tune_index"], st["losses"]
        self.model_, self.tokenizer_ = load_backbone(self.model, self._seed)
        self.label_token_ids_ = self._label_ids()
        if st["lora"]:
            self._wrap_lora()
            missing = set(st["lora"]) - {n for n, _ in self.model_.named_parameters()}
            if missing:
                raise UserError(f"Invalid adapter in {path}: unknown parameters {sorted(missing)[:3]}")
            self.model_.load_state_dict(st["lora"], strict=False)
        self.model_.eval()
        return self
