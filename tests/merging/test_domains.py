"""The generated SSR domains: answers re-derived by independent naive solvers from the prompt text, splits,
scoring and errors."""

import re

import pytest

from tenfold.common.errors import UserError
from tenfold.merging.domains import DOMAINS, HEADINGS, exact_match, make_split, parse_answer


def _solve_spatial(p):
    m = re.findall(r"\((\d),(\d)\)", p)
    if m:
        (x1, y1), (x2, y2) = [(int(a), int(b)) for a, b in m]
        if "steps apart" in p:
            return str(abs(x1 - x2) + abs(y1 - y2))
        return {(1, 0): "right", (-1, 0): "left", (0, 1): "above", (0, -1): "below"}[
            ((x2 > x1) - (x2 < x1), (y2 > y1) - (y2 < y1))]
    start = HEADINGS.index(re.search(r"Facing (\w+)", p).group(1))
    turns = re.search(r"you turn (.*)\. Which", p).group(1).split(", then ")
    deg = start * 90 + sum({"left": -90, "right": 90, "around": 180}[t] for t in turns)
    return HEADINGS[(deg // 90) % 4]


def _solve_driving(p):
    lanes, lane, speed = map(int, re.search(r"lanes 1-(\d)\. A car is in lane (\d), row \d+, speed (\d)", p).groups())
    action = re.search(r"Action: (\w+)", p).group(1)
    if p.endswith("Next lane?\nA:"):
        return str(min(lanes, max(1, lane + {"left": -1, "right": 1}.get(action, 0))))
    assert p.endswith("Next speed?\nA:") and action in ("keep", "brake", "accelerate")
    return str(max(0, speed + {"brake": -1, "accelerate": 1}.get(action, 0)))


def _solve_aerial(p):
    if p.startswith("Top view"):
        grid = p.split("\n")[1:5]
        s = re.search(r"How many (\w)\?", p).group(1)
        return str(sum(row.count(s) for row in grid))
    hs = {n: int(h) for n, h in re.findall(r"(\w) at (\d+) m", p)}
    return (max if "highest" in p else min)(hs, key=hs.get)


def _solve_embodied(p):
    steps = re.search(r"Plan: (.*)\. (Is|What)", p).group(1).split("; ")
    hand, ok = None, True
    for s in steps:
        verb, obj = s.split()[:2]
        if verb == "pick":
            ok = ok and hand is None
            hand = obj
        else:
            ok = ok and hand == obj
            hand = None
    if "valid" in p:
        return "yes" if ok else "no"
    assert ok
    return hand or "nothing"


SOLVERS = {"spatial": _solve_spatial, "driving": _solve_driving, "aerial": _solve_aerial,
           "embodied": _solve_embodied}


@pytest.mark.parametrize("domain", DOMAINS.names())
def test_answers_match_a_naive_solver(domain):
    train, test = make_split(domain, 300, 50)
    for ex in train + test:
        assert SOLVERS[domain](ex.prompt) == ex.answer, ex.prompt


@pytest.mark.parametrize("domain", DOMAINS.names())
def test_splits_are_deterministic_disjoint_and_short(domain):
    tr1, te1 = make_split(domain, 100, 20)
    tr2, te2 = make_split(domain, 50, 20)
    assert te1 == te2 and tr1[:50] == tr2  # test set independent of n_train; prefixes stable
    assert not {e.prompt for e in tr1} & {e.prompt for e in te1}
    assert len({e.prompt for e in tr1}) == 100
    assert make_split(domain, 10, 5, seed=1) != make_split(domain, 10, 5, seed=0)
    assert all(len(e.prompt) < 160 and e.prompt.endswith("\nA:") and " " not in e.answer for e in tr1)


def test_answers_are_balanced_enough():
    _, te = make_split("spatial", 0, 200)
    assert len({e.answer for e in te}) > 8  # directions, distances and headings all occur


@pytest.mark.parametrize("completion,answer,hit", [
    (" left", "left", True), (" left\nQ: more", "left", True), ("left ", "left", True),
    (" left right", "left", False), (" 1,7", "1,7", True), (" 1, 7", "1,7", False), ("", "no", False),
])
def test_exact_match_table(completion, answer, hit):
    assert exact_match([completion], [answer]) == [float(hit)]
    assert (parse_answer(completion) == answer) == hit


@pytest.mark.parametrize("call,msg", [
    (lambda: make_split("mars", 1, 1), "Unknown domain 'mars'"),
    (lambda: make_split("spatial", -1, 1), "Invalid n_train"),
    (lambda: make_split("spatial", 1, 0), "Invalid n_test"),
    (lambda: make_split("spatial", 1.5, 1), "Invalid n_train"),
    (lambda: make_split("driving", 10 ** 4, 1), "could only draw"),
    (lambda: exact_match(["a"], []), "1 completions for 0 answers"),
])
def test_errors(call, msg):
    with pytest.raises(UserError, match=msg):
        call()
