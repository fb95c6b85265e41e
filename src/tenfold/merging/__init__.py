"""Data-free model merging over state dicts (average, task arithmetic, TIES, DARE, WUDI, TSVM) and the
scaffold-specialise-reconcile pipeline with GRPO of ACE-Brain-0 (paper 10, arXiv 2603.03198). See docs/ssr.md.

PEFT and TRL are imported only when a LoRA stage or GRPO runs."""

from tenfold.merging.domains import DOMAINS, Example, exact_match, make_split, parse_answer
from tenfold.merging.grpo import GRPOSettings, exact_match_reward, grpo_train
from tenfold.merging.merges import (
    MERGES, MergeInfo, average, check_same_base, check_state_dicts, dare, merge, task_arithmetic, ties, tsvm,
    tsvm_matrix, wudi, wudi_adam, wudi_closed_form, wudi_objective,
)
from tenfold.merging.ssr import SSRConfig, SSRPipeline

__all__ = [
    "MERGES", "MergeInfo", "merge", "average", "task_arithmetic", "ties", "dare", "wudi", "wudi_adam",
    "wudi_closed_form", "wudi_objective", "tsvm", "tsvm_matrix", "check_same_base", "check_state_dicts",
    "DOMAINS", "Example", "make_split", "exact_match", "parse_answer",
    "SSRConfig", "SSRPipeline", "GRPOSettings", "grpo_train", "exact_match_reward",
]
