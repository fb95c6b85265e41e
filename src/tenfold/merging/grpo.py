"""GRPO with a verifiable exact-match reward through TRL's `GRPOTrainer` (the optional last stage of SSR).

Paper: Gong et al., "ACE-Brain-0", arXiv 2603.03198: after merging, the model is refined with GRPO (Shao et
al., arXiv 2402.03300) with the KL penalty dropped (beta = 0; the clipped surrogate is judged sufficient).
Implemented: a thin wrapper that builds `trl.GRPOConfig` from `GRPOSettings`, trains LoRA adapters on the
adapted (top) layers of a full causal LM with `trl.GRPOTrainer`, rewards 1 for an exact answer
(the completion's first line equals " " + answer, the rule of the pipeline's metric), and returns the merged-in adapted-layer state plus the per-step
reward curve. The GRPO algorithm itself is TRL's (pinned: trl==1.13.0); nothing here re-implements it.
Not implemented: a format reward, vLLM generation, the paper's (unpublished) group size, data and lr.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from tenfold.common.config import field
from tenfold.common.errors import UserError
from tenfold.merging.domains import Example


@dataclass
class GRPOSettings:
    """GRPO knobs (TRL names in brackets). Defaults are CPU-sized; the paper's values are not published.

    Examples
    --------
    >>> GRPOSettings(steps=2).validate().beta
    0.0
    """

    steps: int = field(20, help="optimizer steps [max_steps]")
    prompts_per_step: int = field(2, help="distinct prompts per step; batch = prompts x generations")
    num_generations: int = field(4, help="group size G [num_generations]")
    max_completion_length: int = field(6, help="generated tokens per completion [max_completion_length]")
    temperature: float = field(1.0, help="sampling temperature of the rollouts [temperature]")
    lr: float = field(2e-4, help="AdamW learning rate of the LoRA adapters [learning_rate]")
    beta: float = field(0.0, help="KL coefficient: 0 = no KL and no reference model, as the paper [beta]")
    epsilon: float = field(0.2, help="PPO clip range [epsilon]; it acts only when num_iterations > 1")
    num_iterations: int = field(1, help="policy updates per generated batch [num_iterations]; with 1 (TRL's "
                                "default) the ratio to the sampling policy is 1, so the clip never binds")
    loss_type: str = field("grpo", help="TRL loss aggregation [loss_type]: grpo = per-sequence 1/|o_i| average")
    lora_rank: int = field(8, help="LoRA rank of the GRPO adapters")
    lora_alpha: float = field(16.0, help="LoRA alpha of the GRPO adapters")
    save_every: int = field(10, help="steps between TRL checkpoints (the stage resumes from the last one)")
    seed: int = field(0, help="TRL seed (rollout sampling, data order, LoRA init)")

    def validate(self) -> "GRPOSettings":
        """Raise `UserError` naming the first bad field; return self."""
        for name in ("steps", "prompts_per_step", "num_generations", "max_completion_length", "lora_rank",
                     "save_every", "num_iterations"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"Invalid grpo {name}: {v!r}; expected an integer >= 1")
        if self.num_generations < 2:
            raise UserError(f"Invalid grpo num_generations: {self.num_generations}; GRPO needs a group of >= 2")
        for name in ("temperature", "lr", "lora_alpha", "epsilon"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise UserError(f"Invalid grpo {name}: {v!r}; expected a finite number > 0")
        if not isinstance(self.beta, (int, float)) or not math.isfinite(self.beta) or self.beta < 0:
            raise UserError(f"Invalid grpo beta: {self.beta!r}; expected a finite number >= 0 (0 = no KL)")
        if self.loss_type not in ("grpo", "bnpo", "dr_grpo", "dapo"):
            raise UserError(f"Invalid grpo loss_type: {self.loss_type!r}; expected one of grpo, bnpo, dr_grpo, dapo")
        return self


def exact_match_reward(prompts: Sequence[Any], completions: Sequence[str], answer: Sequence[str],
                       **kwargs: Any) -> list[float]:
    """TRL reward function: 1.0 when the completion's first line is exactly ``" " + answer``, else 0.0.

    This is the rule of the pipeline's greedy exact-match metric (the answer after one space, then a stop: end
    of text or a new line), so GRPO optimises what is evaluated; the looser `exact_match` (whitespace stripped)
    would also reward ``"left"`` or ``"\nleft"``, which the metric counts as misses. The dataset's ``answer``
    column arrives as a keyword argument (TRL passes every column).

    Examples
    --------
    >>> exact_match_reward(["p", "p", "p"], [" left", " no", "left"], answer=["left", "yes", "left"])
    [1.0, 0.0, 0.0]
    """
    if len(completions) != len(answer):
        raise UserError(f"exact_match_reward: {len(completions)} completions for {len(answer)} answers")
    return [1.0 if c.split("\n")[0] == " " + a else 0.0 for c, a in zip(completions, answer)]


def grpo_train(model: torch.nn.Module, tok, examples: Sequence[Example], settings: GRPOSettings,
               out_dir: str | Path, *, layers: Sequence[int], targets: Sequence[str]) -> tuple[torch.nn.Module, dict]:
    """Run TRL's GRPOTrainer on `model` with LoRA on `layers` x `targets`; return (merged model, log).

    Parameters
    ----------
    model : HF causal LM (float32, CPU)
    tok : its tokenizer
    examples : sequence of Example
        Training prompts with exact answers (cycled as needed).
    settings : GRPOSettings
    out_dir : path
        TRL's output dir: checkpoints every `settings.save_every` steps; a rerun resumes from the last one.
    layers : sequence of int
        Decoder layer indices that get adapters (PEFT ``layers_to_transform``).
    targets : sequence of str
        Linear module names (q_proj, ...).

    Returns
    -------
    model : the policy with the adapters merged in (a plain HF model)
    log : dict with "step", "reward", "reward_std", "loss" lists (one entry per step), "kl" (per step when
        beta != 0, else empty) and "seconds", "gen_per_s"
    """
    settings.validate()
    if not examples:
        raise UserError("Invalid examples: empty; GRPO needs training prompts")
    from datasets import Dataset
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_rows = settings.steps * settings.prompts_per_step
    rows = [{"prompt": examples[i % len(examples)].prompt, "answer": examples[i % len(examples)].answer}
            for i in range(n_rows)]
    args = GRPOConfig(
        output_dir=str(out_dir), use_cpu=True, bf16=False, fp16=False, seed=settings.seed,
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        gradient_accumulation_steps=1, num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length, temperature=settings.temperature,
        learning_rate=settings.lr, lr_scheduler_type="constant", warmup_steps=0, beta=settings.beta,
        epsilon=settings.epsilon, num_iterations=settings.num_iterations, loss_type=settings.loss_type, max_steps=settings.steps, logging_steps=1,
        save_strategy="steps", save_steps=settings.save_every, save_only_model=False, report_to="none",
        dataloader_num_workers=0, disable_tqdm=True, shuffle_dataset=True)
    peft_cfg = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                          target_modules=list(targets), layers_to_transform=list(layers), task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=exact_match_reward, args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=peft_cfg)
    # HF Trainer prints every log dict to stdout (PrinterCallback; ProgressCallback without disable_tqdm), and
    # stdout of `tenfold reproduce` is tenfold's own; the same dicts stay in trainer.state.log_history, read below
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    last = get_last_checkpoint(str(out_dir)) if any(out_dir.glob("checkpoint-*")) else None
    out = trainer.train(resume_from_checkpoint=last)
    hist = [h for h in trainer.state.log_history if "reward" in h]
    log = {"step": [int(h["step"]) for h in hist], "reward": [float(h["reward"]) for h in hist],
           "reward_std": [float(h.get("reward_std", 0.0)) for h in hist], "loss": [float(h["loss"]) for h in hist],
           "kl": [float(h["kl"]) for h in hist if "kl" in h],  # TRL logs it only when beta != 0
           "seconds": float(out.metrics.get("train_runtime", 0.0))}
    done = len(hist) * settings.prompts_per_step * settings.num_generations
    log["gen_per_s"] = done / log["seconds"] if log["seconds"] > 0 else 0.0
    merged = trainer.model.merge_and_unload()
    return merged, log
