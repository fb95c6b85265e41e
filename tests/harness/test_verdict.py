import pytest

from tenfold.harness.experiment import Claim
from tenfold.harness.verdict import judge

UP = Claim("c", "s", "acc", "m", "b", "higher")
DOWN = Claim("c", "s", "loss", "m", "b", "lower")
NONINF = Claim("c", "s", "acc", "m", "b", "higher", margin=1.0)


def _seeds(values):
    return {str(i): v for i, v in enumerate(values)}


@pytest.mark.parametrize("claim, m, b, mode, verdict", [
    (UP, [2, 2.1, 1.9], [1, 1, 1], "quick", "held"),
    (UP, [1, 1, 1], [2, 2.1, 1.9], "quick", "not_held"),
    (UP, [1.0, 2.0, 0.5], [1.2, 1.0, 1.1], "quick", "inconclusive"),       # noisy
    (UP, [2, 2.1, 1.9], [1, 1, 1], "smoke", "inconclusive"),               # smoke never conclusive
    (UP, [2, 2.1], [1, 1], "quick", "inconclusive"),                       # too few seeds
    (DOWN, [0.5, 0.4, 0.45], [1, 1, 1], "full", "held"),                   # lower is the claim
    (NONINF, [79.5, 79.6, 79.4], [80, 80, 80], "quick", "held"),           # within the 1-point margin
    (NONINF, [77, 77.1, 76.9], [80, 80, 80], "quick", "not_held"),         # worse by more than the margin
    (UP, [1, 1, 1], [1, 1, 1], "quick", "inconclusive"),                   # exact tie
])
def test_verdict_rule(claim, m, b, mode, verdict):
    out = judge(claim, _seeds(m), _seeds(b), mode)
    assert out["verdict"] == verdict, out
    assert out["evidence"]["n"] == min(len(m), len(b))


def test_evidence_is_paired_by_seed():
    out = judge(UP, {"0": 3.0, "1": 5.0, "7": 9.0}, {"0": 1.0, "1": 2.0}, "quick")
    assert out["evidence"]["per_seed_diff"] == [2.0, 3.0]
