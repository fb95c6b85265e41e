"""Data-free model merging over state dicts (average, task arithmetic, TIES, DARE, WUDI) for the
scaffold-specialise-reconcile paradigm of ACE-Brain-0 (paper 10, arXiv 2603.03198). See docs/ssr.md."""

from tenfold.merging.merges import (
    MERGES, MergeInfo, average, check_same_base, check_state_dicts, dare, merge, task_arithmetic, ties, wudi,
    wudi_adam, wudi_closed_form, wudi_objective,
)

__all__ = [
    "MERGES", "MergeInfo", "merge", "average", "task_arithmetic", "ties", "dare", "wudi", "wudi_adam",
    "wudi_closed_form", "wudi_objective", "check_same_base", "check_state_dicts",
]
