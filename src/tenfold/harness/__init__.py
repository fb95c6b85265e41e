"""The reproduction harness: experiments declare arms, claims and budgets; the runner runs
(arm, seed) units with resume, the verdict rule judges claims, and the report writer renders results.
"""

from tenfold.harness.experiment import Arm, Claim, Experiment, Metric, PaperResult, Regime, UnitContext, UnitResult
from tenfold.harness.verdict import judge

__all__ = ["Arm", "Claim", "Experiment", "Metric", "PaperResult", "Regime", "UnitContext", "UnitResult", "judge"]
