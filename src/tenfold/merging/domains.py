"""Offline text domains with exact answers for the scaffold-specialise-reconcile reproduction (paper 10).

ACE-Brain-0 (Gong et al., arXiv 2603.03198) trains an 8B vision-language model on spatial, driving, aerial
(UAV) and embodied benchmarks. None of that data or any VLM is available offline here, so these four domains
are our **reconstruction**: small generated puzzles rendered as short text prompts (tens of tokens) with one
short exact answer each, in the spirit of the paper's domains:

* ``spatial`` (the scaffold): relative position of two objects on a grid, Manhattan distance, heading after
  turns;
* ``driving``: the next lane of a car on a 3-5 lane road after a lane action (changes clamp at the road's edges),
  or its next speed after a speed action (braking stops at 0); one number per answer (issue 31; the earlier
  "next lane and row" asked for two numbers and an addition, and no expert learned it);
* ``aerial``: counting one symbol in a top-down grid, and the highest / lowest of three drones;
* ``embodied``: whether a pick-and-place plan is valid (pick needs an empty hand, place needs the object in
  hand), and what the hand holds after a valid plan.

Every example is a `Example(prompt, answer)`; prompts end in ``"\\nA:"`` and the model is expected to answer
``" " + answer`` and stop. Splits are deterministic (`make_split`): train and test are disjoint by prompt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

from tenfold.common.errors import UserError
from tenfold.common.registry import Registry

OBJECTS = ("cup", "key", "box", "pen", "ball", "book")
HEADINGS = ("north", "east", "south", "west")
SYMBOLS = ("T", "H", "C")  # tree, house, car in the aerial grids


@dataclass(frozen=True)
class Example:
    """One prompt with its exact answer (no leading space; the model answers ``" " + answer``)."""

    prompt: str
    answer: str


# ------------------------------------------------------------------------------------------------ generators
def _spatial(rng: random.Random) -> Example:
    kind = rng.randrange(3)
    a, b = rng.sample(OBJECTS, 2)
    if kind == 0:  # relative position along one axis (y grows upwards)
        x1, y1 = rng.randrange(6), rng.randrange(6)
        if rng.random() < 0.5:
            x2, y2 = rng.choice([x for x in range(6) if x != x1]), y1
            ans = "right" if x2 > x1 else "left"
        else:
            x2, y2 = x1, rng.choice([y for y in range(6) if y != y1])
            ans = "above" if y2 > y1 else "below"
        return Example(f"The {a} is at ({x1},{y1}) and the {b} is at ({x2},{y2}). Where is the {b} from the "
                       f"{a}?\nA:", ans)
    if kind == 1:  # Manhattan distance
        x1, y1, x2, y2 = (rng.randrange(6) for _ in range(4))
        return Example(f"The {a} is at ({x1},{y1}) and the {b} is at ({x2},{y2}). How many steps apart?\nA:",
                       str(abs(x1 - x2) + abs(y1 - y2)))
    start = rng.randrange(4)  # heading after 1-3 turns
    turns = [rng.choice(("left", "right", "around")) for _ in range(rng.randint(1, 3))]
    h = start + sum({"left": -1, "right": 1, "around": 2}[t] for t in turns)
    return Example(f"Facing {HEADINGS[start]}, you turn {', then '.join(turns)}. Which way are you facing?\nA:",
                   HEADINGS[h % 4])


def _driving(rng: random.Random) -> Example:
    # One question, one number (issue 31): the earlier form asked for "lane,row" after a move, two numbers and an
    # addition, and no expert learned it (1.6 % exact match in the earlier full run, the base model's level).
    lanes = rng.randint(3, 5)
    lane, row, speed = rng.randint(1, lanes), rng.randint(0, 19), rng.randint(0, 3)  # row: context only
    if rng.random() < 0.5:  # lane after a lane action (changes clamp at the road's edges)
        action = rng.choice(("keep", "left", "right"))
        new_lane = min(lanes, max(1, lane + {"left": -1, "right": 1}.get(action, 0)))
        return Example(f"Road with lanes 1-{lanes}. A car is in lane {lane}, row {row}, speed {speed}. "
                       f"Action: {action}. Next lane?\nA:", str(new_lane))
    action = rng.choice(("keep", "brake", "accelerate"))  # speed after a speed action (braking stops at 0)
    new_speed = max(0, speed + {"brake": -1, "accelerate": 1}.get(action, 0))
    return Example(f"Road with lanes 1-{lanes}. A car is in lane {lane}, row {row}, speed {speed}. "
                   f"Action: {action}. Next speed?\nA:", str(new_speed))


def _aerial(rng: random.Random) -> Example:
    if rng.random() < 0.5:  # count one symbol in a 4x4 top-down grid
        cells = [rng.choice(SYMBOLS + (".", ".", ".")) for _ in range(16)]  # half the cells empty
        grid = "\n".join("".join(cells[r * 4:(r + 1) * 4]) for r in range(4))
        s = rng.choice(SYMBOLS)
        return Example(f"Top view (T tree, H house, C car):\n{grid}\nHow many {s}?\nA:", str(cells.count(s)))
    names = ("A", "B", "C")
    heights = rng.sample(range(10, 100, 10), 3)
    q = rng.choice(("highest", "lowest"))
    pick = heights.index(max(heights) if q == "highest" else min(heights))
    listing = ", ".join(f"{n} at {h} m" for n, h in zip(names, heights))
    return Example(f"Drones: {listing}. Which is {q}?\nA:", names[pick])


def _embodied(rng: random.Random) -> Example:
    objs = rng.sample(OBJECTS, 3)
    steps, hand = [], None
    valid = rng.random() < 0.5
    n = rng.randint(2, 4)
    bad = rng.randrange(n) if not valid else -1
    for i in range(n):
        if i == bad:  # an invalid step: pick with a full hand, or place what is not held
            if hand is None:
                steps.append(f"place {rng.choice(objs)}")
            else:
                steps.append(f"pick {rng.choice([o for o in objs if o != hand])}")
            break
        if hand is None:
            hand = rng.choice(objs)
            steps.append(f"pick {hand}")
        else:
            steps.append(f"place {hand} on {rng.choice(('table', 'shelf', 'tray'))}")
            hand = None
    plan = "; ".join(steps)
    if valid and rng.random() < 0.5:
        return Example(f"Hand empty. Plan: {plan}. What is held at the end?\nA:", hand or "nothing")
    return Example(f"Hand empty. Plan: {plan}. Is the plan valid?\nA:", "yes" if valid else "no")


@dataclass(frozen=True)
class DomainInfo:
    """A registered domain: its generator (one `Example` from a `random.Random`) and a description."""

    name: str
    generate: Callable[[random.Random], Example]
    description: str


DOMAINS: Registry[DomainInfo] = Registry("domain")
for _d in (
    DomainInfo("spatial", _spatial, "grid relative position, Manhattan distance, heading after turns"),
    DomainInfo("driving", _driving, "next lane (clamped) or next speed of a car after an action"),
    DomainInfo("aerial", _aerial, "count a symbol in a 4x4 top-down grid; highest/lowest of three drones"),
    DomainInfo("embodied", _embodied, "validity of a pick-and-place plan; object held at the end"),
):
    DOMAINS.register(_d.name, _d)


# ------------------------------------------------------------------------------------------------ splits, scoring
def make_split(domain: str, n_train: int, n_test: int, *, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Deterministic, prompt-disjoint (train, test) lists of one domain.

    The test set is drawn first from its own stream, so it does not change with `n_train`; train examples
    whose prompt is in the test set are skipped.

    Parameters
    ----------
    domain : str
        A name in `DOMAINS` (spatial, driving, aerial, embodied).
    n_train, n_test : int
        Sizes, >= 0 and >= 1.
    seed : int, default=0
        The data seed (the same split for every run seed by default).

    Returns
    -------
    (list of Example, list of Example)

    Examples
    --------
    >>> tr, te = make_split("driving", 4, 2)
    >>> len(tr), len(te), te[0].prompt.endswith("A:")
    (4, 2, True)
    """
    info = DOMAINS.get(domain)
    for name, v, lo in (("n_train", n_train, 0), ("n_test", n_test, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise UserError(f"Invalid {name}: {v!r}; expected an integer >= {lo}")
    test, seen = _unique(info.generate, random.Random(f"{domain}/test/{seed}"), n_test, set())
    train, _ = _unique(info.generate, random.Random(f"{domain}/train/{seed}"), n_train, set(seen))
    return train, test


def _unique(gen, rng: random.Random, n: int, skip: set[str]) -> tuple[list[Example], set[str]]:
    """`n` examples with distinct prompts not in `skip` (refuses after 2000 duplicates in a row: the domain
    has fewer distinct prompts than asked for)."""
    out, seen, misses = [], set(), 0
    while len(out) < n and misses < 2000:
        ex = gen(rng)
        if ex.prompt in skip or ex.prompt in seen:
            misses += 1
            continue
        misses = 0
        seen.add(ex.prompt)
        out.append(ex)
    if len(out) < n:
        raise UserError(f"could only draw {len(out)} distinct prompts of {n}; ask for fewer examples")
    return out, seen


def parse_answer(completion: str) -> str:
    """The answer in a generated completion: its first line, stripped.

    Examples
    --------
    >>> parse_answer(" 1,7\\nQ: next")
    '1,7'
    """
    return completion.strip().split("\n")[0].strip()


def exact_match(completions: Sequence[str], answers: Sequence[str]) -> list[float]:
    """1.0 where `parse_answer(completion) == answer`, else 0.0 (the verifiable reward and the metric).

    Examples
    --------
    >>> exact_match([" left", " 3 steps"], ["left", "3"])
    [1.0, 0.0]
    """
    if len(completions) != len(answers):
        raise UserError(f"exact_match: {len(completions)} completions for {len(answers)} answers")
    return [1.0 if parse_answer(c) == a else 0.0 for c, a in zip(completions, answers)]
