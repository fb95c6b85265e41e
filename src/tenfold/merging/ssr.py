"""The scaffold-specialise-reconcile (SSR) pipeline of ACE-Brain-0, on a small causal LM with text domains.

Paper: Gong et al., "ACE-Brain-0: Spatial Intelligence as a Shared Scaffold for Universal Embodiments",
arXiv 2603.03198 (training code not released; what is known: ../shared/research/fidelity/tapgpt-ssr.md section 2).
The paper trains an 8B vision-language model (Qwen3-VL); this module reproduces the *paradigm* on a 135M
text model (SmolLM2-135M-Instruct) with the generated text domains of `tenfold.merging.domains`.

Implemented: `SSRPipeline`, with resumable stages that each write their own checkpoint under a work dir:
``scaffold`` (train the shared base on the scaffold domain), ``specialise`` (branch an expert from the scaffold
or from the base and train it on one domain: LoRA via PEFT by default, full fine-tuning as an option),
``reconcile`` (merge any stage models against any base with any merge in `tenfold.merging.MERGES`; for LoRA
stages a task vector is the sum of the merged-in deltas B A alpha/r since the base), ``joint`` (multi-task training) and ``sequential`` (one domain
after another) baselines, optional GRPO (`tenfold.merging.grpo`, TRL's GRPOTrainer), and an exact-match
evaluation. The paper's order (merge the scaffold and the experts branched from it against the pre-trained model,
then SFT the merge on the next domain) is `reconcile` on those stages followed by `train` from the merge. Not
implemented: images, the paper's square-averaged token weights, and its data.

Reconstruction (ours, each a `SSRConfig` field): only the top `adapt_layers` decoder layers are trained in
every stage. The frozen bottom layers are then the same for every model of the pipeline, so their output for
each (prompt, answer) is computed once and cached (`TrunkCache`); training and evaluation run only the top
layers. This is exact (tested against the full model), and it is what makes the reproduction fit a 2-core CPU.
Exact match is computed in one teacher-forced forward pass: the greedy completion equals ``" " + answer`` and
then stops iff the argmax at every answer position is the answer token and the argmax after it is the
end-of-sequence token or a token that starts a new line (the `parse_answer` rule), which the tests check
against real greedy generation.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.config import config_key, field, to_dict
from tenfold.common.errors import UserError, check_choice
from tenfold.merging.domains import Example
from tenfold.merging.merges import MERGES, merge

FINETUNES = ("lora", "full")
BRANCHES = ("scaffold", "base")
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
StateDict = dict[str, torch.Tensor]


@dataclass
class SSRConfig:
    """Settings of every stage of the pipeline (saved with each stage checkpoint).

    Examples
    --------
    >>> SSRConfig(adapt_layers=2).validate().finetune
    'lora'
    """

    adapt_layers: int = field(6, help="top decoder layers trained in every stage; the rest stay frozen and cached")
    finetune: str = field("lora", help="lora (PEFT LoRA on the adapted layers, merged in after training) or full")
    lora_rank: int = field(8, help="LoRA rank r")
    lora_alpha: float = field(16.0, help="LoRA alpha (the delta is B A alpha / r)")
    lora_targets: tuple[str, ...] = field(LINEAR, help="linear modules of the adapted layers that get LoRA")
    lr: float = field(2e-3, help="AdamW learning rate of the SFT stages (use ~1e-4 for finetune=full)")
    weight_decay: float = field(0.0, help="AdamW weight decay of the SFT stages")
    batch_size: int = field(8, help="examples per SFT step")
    scaffold_steps: int = field(40, help="SFT steps of the scaffold stage")
    expert_steps: int = field(30, help="SFT steps of each specialist (joint: this x number of domains)")
    checkpoint_every: int = field(10, help="SFT steps between mid-stage checkpoints")
    eval_batch: int = field(64, help="examples per evaluation forward pass")
    seed: int = field(0, help="seed of LoRA init and batch order (each stage derives its own stream)")

    def validate(self) -> "SSRConfig":
        """Raise `UserError` naming the first bad field; return self."""
        check_choice("finetune", self.finetune, FINETUNES)
        for name in ("adapt_layers", "lora_rank", "batch_size", "checkpoint_every", "eval_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"Invalid {name}: {v!r}; expected an integer >= 1")
        for name in ("scaffold_steps", "expert_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UserError(f"Invalid {name}: {v!r}; expected an integer >= 0")
        for name in ("lr", "lora_alpha"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise UserError(f"Invalid {name}: {v!r}; expected a finite number > 0")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise UserError(f"Invalid weight_decay: {self.weight_decay!r}; expected a number >= 0")
        bad = [t for t in self.lora_targets if t not in LINEAR]
        if not self.lora_targets or bad:
            raise UserError(f"Invalid lora_targets: {list(self.lora_targets)}; expected a non-empty subset of "
                            f"{', '.join(LINEAR)}")
        return self


# ------------------------------------------------------------------------------------------------ the split model
def split_model(model: nn.Module, adapt_layers: int) -> tuple[int, nn.ModuleList]:
    """Keep only the top `adapt_layers` decoder layers in `model` (in place); return (n_frozen, bottom layers).

    `model` is an HF causal LM with ``model.model.layers`` (Llama-style). The returned bottom layers compute
    the hidden states that the truncated model then takes as ``inputs_embeds`` (RoPE is applied inside
    attention, so the positions are unchanged).
    """
    layers = model.model.layers
    if not 1 <= adapt_layers <= len(layers):
        raise UserError(f"Invalid adapt_layers: {adapt_layers}; expected 1..{len(layers)} for this model")
    n = len(layers) - adapt_layers
    model.model.layers = nn.ModuleList(layers[n:])
    return n, nn.ModuleList(layers[:n])


@dataclass
class Encoded:
    """A tokenised domain split: right-padded ids, prompt and total lengths, cached trunk hidden states.

    Attributes
    ----------
    ids : LongTensor of shape (N, T)
    prompt_len, total_len : LongTensor of shape (N,)
        Tokens of the prompt, and of prompt + answer + end-of-sequence.
    hidden : FloatTensor of shape (N, T, d)
        Output of the frozen bottom layers.
    """

    ids: torch.Tensor
    prompt_len: torch.Tensor
    total_len: torch.Tensor
    hidden: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)


def encode(tok, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids (N, T) right-padded with eos, prompt_len (N,), total_len (N,)); target = " answer" + eos."""
    rows, plen = [], []
    for ex in examples:
        p = tok(ex.prompt, add_special_tokens=False)["input_ids"]
        a = tok(" " + ex.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append(p + a)
        plen.append(len(p))
    t = max(len(r) for r in rows)
    ids = torch.full((len(rows), t), tok.eos_token_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    return ids, torch.tensor(plen), torch.tensor([len(r) for r in rows])


@torch.no_grad()
def trunk_hidden(embed: nn.Module, bottom: nn.ModuleList, rotary: nn.Module, ids: torch.Tensor,
                 batch: int = 32) -> torch.Tensor:
    """Hidden states after the frozen bottom layers, (N, T, d): causal attention only, so right padding never
    changes the real positions."""
    out = []
    for s in range(0, len(ids), batch):
        x = ids[s:s + batch]
        h = embed(x)
        pos = torch.arange(x.shape[1]).unsqueeze(0)
        pe = rotary(h, pos)
        mask = torch.full((x.shape[1], x.shape[1]), float("-inf")).triu(1)[None, None]
        for layer in bottom:
            h = layer(h, attention_mask=mask, position_ids=pos, position_embeddings=pe)
            h = h[0] if isinstance(h, tuple) else h
        out.append(h)
    return torch.cat(out)


def answer_positions(prompt_len: torch.Tensor, total_len: torch.Tensor, t: int) -> torch.Tensor:
    """Bool (N, T) mask of the positions whose next-token prediction is an answer or eos token."""
    pos = torch.arange(t).unsqueeze(0)
    return (pos >= prompt_len.unsqueeze(1) - 1) & (pos < total_len.unsqueeze(1) - 1)


def head_logits(model: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits (M, V) of the truncated `model` at the M positions where `mask` (N, T) is True; the LM head runs
    only there (it is the largest matrix of a 135M model)."""
    h = model.model(inputs_embeds=hidden).last_hidden_state  # (N, T, d)
    return model.lm_head(h[mask])


_STOP: dict = {}


def stop_tokens(tok) -> torch.Tensor:
    """Ids that end a completion under `parse_answer`: eos and every token whose text starts with a newline
    (memoised per tokenizer: the scan decodes the whole vocabulary)."""
    key = (tok.name_or_path, len(tok), tok.eos_token_id)
    if key not in _STOP:
        _STOP[key] = _scan_stop_tokens(tok)
    return _STOP[key]


def _scan_stop_tokens(tok) -> torch.Tensor:
    ids = {tok.eos_token_id}
    for t, i in tok.get_vocab().items():
        if tok.convert_tokens_to_string([t]).startswith("\n"):
            ids.add(i)
    return torch.tensor(sorted(ids))


def greedy_hits(pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor, stop: torch.Tensor) -> list[bool]:
    """Per example: does greedy decoding reproduce the answer and then stop?

    Parameters
    ----------
    pred, target : LongTensor of shape (M,)
        Teacher-forced argmax and target ids at the answer positions, examples concatenated; each example's
        last position is its end-of-sequence slot.
    lengths : LongTensor of shape (N,)
        Answer positions per example (sum = M).
    stop : LongTensor
        Ids accepted in the end slot (`stop_tokens`).

    Returns
    -------
    list of bool, length N

    Examples
    --------
    >>> greedy_hits(torch.tensor([5, 9, 5, 1]), torch.tensor([5, 2, 5, 2]), torch.tensor([2, 2]), torch.tensor([2, 9]))
    [True, False]
    """
    ok = pred == target
    last = lengths.cumsum(0) - 1  # the end slot: any stop token ends the completion
    ok[last] = torch.isin(pred[last], stop)
    # teacher forcing equals greedy decoding as long as every earlier token matched, so all() is exact
    return [bool(o.all()) for o in torch.split(ok, lengths.tolist())]


# ------------------------------------------------------------------------------------------------ trunk cache
class TrunkCache:
    """Tokenised domain splits with the frozen bottom layers' output, computed once and saved to `path`."""

    def __init__(self, path: Path, data: dict[str, Encoded]):
        self.path, self.data = path, data

    @classmethod
    def build(cls, model: nn.Module, bottom: nn.ModuleList, tok, splits: Mapping[str, Sequence[Example]],
              path: Path, progress: Callable = lambda it, **kw: it) -> "TrunkCache":
        """Load from `path` if present, else encode every split ("domain/train", ...) and save atomically."""
        ck = load_checkpoint(path, restore_rng=False)
        if ck is not None and set(ck["data"]) == set(splits):
            return cls(path, {k: Encoded(**v) for k, v in ck["data"].items()})
        data = {}
        for name in progress(list(splits), desc="trunk cache"):
            ids, plen, tlen = encode(tok, splits[name])
            hid = trunk_hidden(model.model.embed_tokens, bottom, model.model.rotary_emb, ids)
            data[name] = Encoded(ids, plen, tlen, hid)
        save_checkpoint(path, data={k: vars(v) for k, v in data.items()})
        return cls(path, data)


# ------------------------------------------------------------------------------------------------ state dicts
def head_state(model: nn.Module, n_frozen: int) -> StateDict:
    """The adapted layers' parameters under the full model's names (``model.layers.<n_frozen + i>.*``)."""
    out = {}
    for i, layer in enumerate(model.model.layers):
        for k, v in layer.state_dict().items():
            out[f"model.layers.{n_frozen + i}.{k}"] = v.detach().clone()
    return out


def load_head_state(model: nn.Module, n_frozen: int, sd: Mapping[str, torch.Tensor]) -> None:
    """Load `sd` (names as `head_state`) into a truncated model, or into a full model when n_frozen=0 and the
    names index the full model's layers."""
    layers = model.model.layers
    for key, v in sd.items():
        parts = key.split(".")
        idx = int(parts[2]) - n_frozen
        if not (parts[:2] == ["model", "layers"] and 0 <= idx < len(layers)):
            raise UserError(f"state dict key {key!r} is not an adapted layer of this model")
        layers[idx].get_parameter(".".join(parts[3:])).data.copy_(v)


def lora_delta(model: nn.Module, n_frozen: int, before: StateDict) -> StateDict:
    """After `merge_and_unload`: the merged-in task vector B A alpha/r per adapted weight (theta - before)."""
    after = head_state(model, n_frozen)
    return {k: after[k] - before[k] for k in before}


# ------------------------------------------------------------------------------------------------ the pipeline
class SSRPipeline:
    """Scaffold, specialise, reconcile (and baselines) over one causal LM, each stage checkpointed in `work_dir`.

    Every model of the pipeline is a state dict of the top `cfg.adapt_layers` decoder layers (`head_state`
    names); the frozen rest is shared. Stages return such state dicts and save them as ``<tag>.pt``; a call
    whose file exists loads it instead of training, and an interrupted SFT stage resumes from
    ``<tag>.partial.pt`` with a bit-identical next step.

    Parameters
    ----------
    cfg : SSRConfig
    domains : Mapping[str, (list of Example, list of Example)]
        (train, test) per domain name.
    work_dir : path
        Stage checkpoints.
    model_fn : callable returning (model, tokenizer)
        A fresh HF Llama-style causal LM in float32 (e.g. `tenfold.models.pretrained.smollm2`).
    cache_path : path, optional
        Where the trunk cache is stored (share it across seeds); default ``work_dir/trunk.pt``.
    progress : callable, optional
        Wraps iterables in a progress bar (`UnitContext.progress`).

    Attributes
    ----------
    n_frozen : int
        Number of frozen bottom layers.
    base_state : dict of str to Tensor
        The unmodified adapted layers (the pre-trained model).
    """

    def __init__(self, cfg: SSRConfig, domains: Mapping[str, tuple[Sequence[Example], Sequence[Example]]],
                 work_dir: str | Path, model_fn: Callable, *, cache_path: str | Path | None = None,
                 progress: Callable | None = None):
        self.cfg = cfg.validate()
        if not domains:
            raise UserError("Invalid domains: empty; expected {name: (train, test)}")
        for name, pair in domains.items():
            if len(pair) != 2 or len(pair[1]) == 0:
                raise UserError(f"Invalid domains[{name!r}]: expected (train, test) with a non-empty test list")
        self.domains = {k: (list(v[0]), list(v[1])) for k, v in domains.items()}
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress or (lambda it, **kw: it)
        self.model_fn = model_fn
        model, self.tok = model_fn()
        model.eval()
        self.n_frozen, bottom = split_model(model, cfg.adapt_layers)
        self.model = model.requires_grad_(False)
        self.base_state = head_state(model, self.n_frozen)
        splits = {f"{d}/{s}": exs for d, (tr, te) in self.domains.items() for s, exs in (("train", tr), ("test", te))
                  if exs}
        key = hashlib.sha256(json.dumps({k: [(e.prompt, e.answer) for e in v] for k, v in splits.items()},
                                        sort_keys=True).encode()).hexdigest()[:12]
        path = Path(cache_path) if cache_path else self.work_dir / "trunk.pt"
        path = path.with_name(f"{path.stem}-{key}-L{self.n_frozen}{path.suffix}")
        self.cache = TrunkCache.build(model, bottom, self.tok, splits, path, self.progress)
        self._stop = stop_tokens(self.tok)

    # -------------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, state: Mapping[str, torch.Tensor], domain: str, split: str = "test") -> float:
        """Greedy exact match (%) of the model `state` on one domain split (one teacher-forced pass per batch)."""
        enc = self._enc(domain, split)
        load_head_state(self.model, self.n_frozen, state)
        hits = []
        for s in range(0, len(enc), self.cfg.eval_batch):
            sl = slice(s, s + self.cfg.eval_batch)
            mask = answer_positions(enc.prompt_len[sl], enc.total_len[sl], enc.ids.shape[1])
            pred = head_logits(self.model, enc.hidden[sl], mask).argmax(-1)  # (M,)
            hits += greedy_hits(pred, _targets(enc.ids[sl], mask), mask.sum(1), self._stop)
        return 100.0 * sum(hits) / len(hits)

    def evaluate_all(self, state: Mapping[str, torch.Tensor], domains: Sequence[str] | None = None,
                     ) -> dict[str, float]:
        """`evaluate` on each domain's test split."""
        return {d: self.evaluate(state, d) for d in (domains or list(self.domains))}

    def _enc(self, domain: str, split: str) -> Encoded:
        check_choice("domain", domain, list(self.domains))
        key = f"{domain}/{split}"
        if key not in self.cache.data:
            raise UserError(f"no {split} examples for domain {domain!r}")
        return self.cache.data[key]

    # -------------------------------------------------------------------------------------------- SFT
    def train(self, start: Mapping[str, torch.Tensor], mixture: Sequence[str], steps: int, tag: str,
              on_step: Callable[[int, float], None] | None = None) -> StateDict:
        """Fine-tune from `start` on the train splits of `mixture` (each example's domain drawn uniformly)
        for `steps` steps; returns the trained adapted-layer state (LoRA merged in). Resumable by `tag`."""
        cfg = self.cfg
        # what this stage is: its start weights, data mixture, length and settings. A checkpoint of the same tag
        # made from anything else is refused rather than silently reused (checkpoints without one are older).
        fp = stage_fingerprint(start, mixture, steps, cfg)
        final = self.work_dir / f"{tag}.pt"
        ck = load_checkpoint(final, restore_rng=False)
        if ck is not None:
            _check_fingerprint(ck, fp, final)
            return ck["state"]
        for d in mixture:
            self._enc(d, "train")
        load_head_state(self.model, self.n_frozen, start)
        seed = int(hashlib.sha256(f"{cfg.seed}/{tag}".encode()).hexdigest()[:8], 16)
        with torch.random.fork_rng(devices=[]):  # LoRA's A init draws from the global RNG; leave it as it was
            torch.manual_seed(seed)
            model, params = self._trainable()
        try:
            opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
            gen = torch.Generator().manual_seed(seed)
            step, losses = 0, []
            partial = self.work_dir / f"{tag}.partial.pt"
            pk = load_checkpoint(partial, restore_rng=False)
            if pk is not None:
                _check_fingerprint(pk, fp, partial)
                for p, v in zip(params, pk["params"]):
                    p.data.copy_(v)
                opt.load_state_dict(pk["optimizer"])
                gen.set_state(pk["gen"])
                step, losses = pk["step"], pk["losses"]
            model.train()
            for step in self.progress(range(step, steps), desc=tag, initial=step, total=steps):
                loss = self._sft_loss(mixture, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                if on_step:
                    on_step(step, losses[-1])
                if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
                    save_checkpoint(partial, params=[p.detach().clone() for p in params], optimizer=opt.state_dict(),
                                    gen=gen.get_state(), step=step + 1, losses=losses, config=to_dict(cfg),
                                    fingerprint=fp)
        except BaseException:  # an interrupted stage must not leave its adapters inside the shared model
            self._discard_trainable(model)
            raise
        model.eval()
        state = self._finish_trainable(model)
        save_checkpoint(final, state=state, losses=losses, config=to_dict(cfg), tag=tag, fingerprint=fp)
        partial.unlink(missing_ok=True)
        return state

    def _trainable(self) -> tuple[nn.Module, list[nn.Parameter]]:
        """The model to train and its trainable parameters (fresh LoRA adapters, or every adapted weight)."""
        if self.cfg.finetune == "full":
            self.model.model.layers.requires_grad_(True)
            return self.model, [p for p in self.model.model.layers.parameters()]
        from peft import LoraConfig, get_peft_model

        pm = get_peft_model(self.model, LoraConfig(r=self.cfg.lora_rank, lora_alpha=self.cfg.lora_alpha,
                                                   lora_dropout=0.0, target_modules=list(self.cfg.lora_targets)))
        return pm, [p for p in pm.parameters() if p.requires_grad]

    def _discard_trainable(self, model: nn.Module) -> None:
        """Drop unfinished LoRA adapters (no merge) and freeze; the partial checkpoint keeps the work."""
        if self.cfg.finetune == "lora" and hasattr(model, "unload"):
            self.model = model.unload()
        self.model.requires_grad_(False)

    def _finish_trainable(self, model: nn.Module) -> StateDict:
        """Merge LoRA into the weights (the expert's delta is B A alpha/r) and freeze; return the state."""
        if self.cfg.finetune == "lora":
            self.model = model.merge_and_unload()
        self.model.requires_grad_(False)
        return head_state(self.model, self.n_frozen)

    def _sft_loss(self, mixture: Sequence[str], gen: torch.Generator) -> torch.Tensor:
        """Mean cross-entropy over the answer + eos tokens of one batch drawn from `mixture`."""
        which = torch.randint(len(mixture), (self.cfg.batch_size,), generator=gen).tolist()
        ids, plen, tlen, hid = [], [], [], []
        for j in which:
            enc = self.cache.data[f"{mixture[j]}/train"]
            i = int(torch.randint(len(enc), (1,), generator=gen))
            ids.append(enc.ids[i]); plen.append(enc.prompt_len[i]); tlen.append(enc.total_len[i])
            hid.append(enc.hidden[i])
        t = max(int(x) for x in tlen)  # crop to the batch's longest real sequence
        ids = torch.stack([x[:t] if len(x) >= t else _pad(x, t, self.tok.eos_token_id) for x in ids])
        hid = torch.stack([x[:t] if len(x) >= t else _pad(x, t, 0.0) for x in hid])
        plen, tlen = torch.stack(plen), torch.stack(tlen)
        mask = answer_positions(plen, tlen, t)
        logits = head_logits(self.model, hid, mask)  # LoRA layers are injected in place into self.model
        return nn.functional.cross_entropy(logits, _targets(ids, mask))

    # -------------------------------------------------------------------------------------------- stages
    def scaffold(self, domain: str = "spatial") -> StateDict:
        """Stage 1: train the shared scaffold from the pre-trained model on `domain` (cfg.scaffold_steps)."""
        return self.train(self.base_state, [domain], self.cfg.scaffold_steps, f"scaffold_{domain}")

    def specialise(self, domain: str, branch_from: str = "scaffold", scaffold_domain: str = "spatial") -> StateDict:
        """Stage 2: an expert branched from the scaffold (or the base) and trained on `domain` alone."""
        check_choice("branch_from", branch_from, BRANCHES)
        start = self.scaffold(scaffold_domain) if branch_from == "scaffold" else self.base_state
        return self.train(start, [domain], self.cfg.expert_steps, f"expert_{domain}_from_{branch_from}")

    def joint(self, domains: Sequence[str], scaffold_domain: str = "spatial", *, start: str = "scaffold",
              steps: int | None = None) -> StateDict:
        """Baseline: one model trained on the mixture of `domains` (each example's domain drawn uniformly) from the
        scaffold (`start="scaffold"`) or from the pre-trained model (`start="base"`), for `steps` SFT steps
        (default expert_steps x len(domains))."""
        check_choice("start", start, BRANCHES)
        steps = self.cfg.expert_steps * len(domains) if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise UserError(f"Invalid steps: {steps!r}; expected an integer >= 0")
        first = self.scaffold(scaffold_domain) if start == "scaffold" else self.base_state
        tag = "joint_" + "_".join(domains) + ("" if start == "scaffold" else f"_from_base_{steps}")
        return self.train(first, list(domains), steps, tag)

    def sequential(self, domains: Sequence[str], scaffold_domain: str = "spatial") -> list[StateDict]:
        """Baseline: from the scaffold, train on each domain in turn (expert_steps each, fresh LoRA per stage,
        merged in); returns the state after each stage."""
        state, out = self.scaffold(scaffold_domain), []
        for i, d in enumerate(domains):
            state = self.train(state, [d], self.cfg.expert_steps, f"seq{i}_" + "_".join(domains[:i + 1]))
            out.append(state)
        return out

    def reconcile(self, method: str, experts: Mapping[str, Mapping[str, torch.Tensor]],
                  base: Mapping[str, torch.Tensor] | None = None, *, name: str | None = None,
                  **merge_kwargs: Any) -> StateDict:
        """Stage 3: merge any stage models `experts` (name -> adapted-layer state, or the path of a stage checkpoint
        ``<tag>.pt`` this pipeline wrote) against any `base` (the same kinds; default:
        the pre-trained model, the paper's choice) with a merge from `MERGES` (hyper-parameters: the registry's
        defaults, overridden by `merge_kwargs`). The result is checkpointed under a tag made of `method`, `name`
        (default: the expert names) and a hash of the base, the experts and the settings, so a call with other
        weights never reuses it.

        The paper (ACE-Brain-0, Table 1 via the digests) merges the spatial scaffold and the driving and aerial
        experts branched from it against the pre-scaffold model, so every task vector carries the scaffold's
        delta: ``pipe.reconcile("wudi", {"spatial": scaffold, "driving": ad, "aerial": uav})``.
        """
        info = MERGES.get(method)
        if not isinstance(experts, Mapping) or not experts:
            raise UserError("Invalid experts: expected a non-empty mapping of stage name -> state dict or stage "
                            "checkpoint path, e.g. {'spatial': pipe.scaffold(), 'driving': 'work/ssr/expert.pt'}")
        experts = {k: _stage_state(v, f"experts[{k!r}]") for k, v in experts.items()}
        base = self.base_state if base is None else _stage_state(base, "base")
        kw = {**info.hyper, **merge_kwargs}
        if info.stochastic and "generator" not in kw:
            kw["generator"] = self.cfg.seed
        h = hashlib.sha256(json.dumps(_jsonable(kw), sort_keys=True).encode())
        for sd in (base, *experts.values()):
            h.update(stage_fingerprint(sd, [], 0, self.cfg).encode())
        tag = f"merge_{method}_{name or '_'.join(experts)}_{h.hexdigest()[:10]}"
        ck = load_checkpoint(self.work_dir / f"{tag}.pt", restore_rng=False)
        if ck is not None:
            return ck["state"]
        state = merge(method, base, list(experts.values()), **kw)
        save_checkpoint(self.work_dir / f"{tag}.pt", state=state, method=method, kwargs=_jsonable(kw),
                        experts=list(experts))
        return state

    def grpo(self, start: Mapping[str, torch.Tensor], examples: Sequence[Example], settings, tag: str,
             ) -> tuple[StateDict, dict]:
        """Optional stage 4: GRPO (TRL) from `start` on `examples`; returns (state, log) and saves ``<tag>.pt``.

        `settings` is a `tenfold.merging.grpo.GRPOSettings`; the adapters go on the same adapted layers and
        modules as the SFT stages. TRL checkpoints in ``<tag>.trl/`` let an interrupted stage resume.
        """
        from tenfold.merging.grpo import grpo_train

        ck = load_checkpoint(self.work_dir / f"{tag}.pt", restore_rng=False)
        if ck is not None:
            return ck["state"], ck["log"]
        model, tok = self.full_model(start)
        n_layers = len(model.model.layers)
        model, log = grpo_train(model, tok, examples, settings, self.work_dir / f"{tag}.trl",
                                layers=list(range(n_layers - self.cfg.adapt_layers, n_layers)),
                                targets=self.cfg.lora_targets)
        layers = model.model.layers
        model.model.layers = nn.ModuleList(layers[self.n_frozen:])
        state = head_state(model, self.n_frozen)
        save_checkpoint(self.work_dir / f"{tag}.pt", state=state, log=log, settings=to_dict(settings))
        import shutil

        shutil.rmtree(self.work_dir / f"{tag}.trl", ignore_errors=True)
        return state, log

    def full_model(self, state: Mapping[str, torch.Tensor]) -> tuple[nn.Module, Any]:
        """A fresh full model (all layers) with `state` loaded into its adapted layers, and the tokenizer."""
        model, tok = self.model_fn()
        load_head_state(model, 0, state)
        return model, tok


def stage_fingerprint(start: Mapping[str, torch.Tensor], mixture: Sequence[str], steps: int, cfg: SSRConfig) -> str:
    """A short hash of an SFT stage's start weights (bytes), data mixture, step count and config."""
    h = hashlib.sha256(json.dumps({"mixture": list(mixture), "steps": steps, "cfg": to_dict(cfg)},
                                  sort_keys=True, default=str).encode())
    for k in sorted(start):
        h.update(k.encode())
        h.update(start[k].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _stage_state(x: Any, name: str) -> Mapping[str, torch.Tensor]:
    """A state dict as given, or the ``state`` of a stage checkpoint at path `x`."""
    if isinstance(x, Mapping):
        return x
    if isinstance(x, (str, Path)):
        ck = load_checkpoint(Path(x), restore_rng=False)
        if ck is None or "state" not in ck:
            raise UserError(f"Invalid {name}: {str(x)!r} is not a stage checkpoint (a <tag>.pt with a 'state')")
        return ck["state"]
    raise UserError(f"Invalid {name}: {type(x).__name__}; expected a state dict or a stage checkpoint path")


def _check_fingerprint(ck: Mapping[str, Any], fp: str, path: Path) -> None:
    if ck.get("fingerprint") not in (None, fp):
        raise UserError(f"stage checkpoint {path} was made from other start weights, data or settings than this "
                        "call; delete it or use another work_dir")


def _pad(x: torch.Tensor, t: int, value) -> torch.Tensor:
    out = torch.full((t, *x.shape[1:]), value, dtype=x.dtype)
    out[:len(x)] = x
    return out


def _targets(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Next-token targets (M,) at the mask's positions: ids shifted left by one."""
    nxt = torch.cat([ids[:, 1:], ids[:, -1:]], 1)
    return nxt[mask]


def _jsonable(kw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None), list, tuple)) else repr(v))
            for k, v in kw.items()}
