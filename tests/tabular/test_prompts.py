"""Prompt building: golden strings, example selection, label parsing, MCAR masking, errors."""

import numpy as np
import pandas as pd
import pytest

from tenfold.common.errors import UserError
from tenfold.tabular import (
    HEADER, aligned_table, build_prompt, build_prompt_parts, instruction, mcar, parse_label, sample_shots,
    serialize_table,
)

DF = pd.DataFrame({"tau": [1.23456, np.nan], "APOE": ["E3E4", "E3E3"], "age": [71, 80]})


@pytest.mark.parametrize("style,decimals,expected", [
    ("table", 3, "  tau APOE age\n1.235 E3E4  71\n  NaN E3E3  80"),
    ("table", None, "    tau APOE age\n1.23456 E3E4  71\n    NaN E3E3  80"),
    ("markdown", 2, "| tau | APOE | age |\n|---|---|---|\n| 1.23 | E3E4 | 71 |\n| NaN | E3E3 | 80 |"),
    ("text", 1, "tau is 1.2, APOE is E3E4, age is 71.\ntau is NaN, APOE is E3E3, age is 80."),
])
def test_serialize_table_golden(style, decimals, expected):
    assert serialize_table(DF, style=style, decimals=decimals) == expected


@pytest.mark.parametrize("style", ["table", "markdown", "text"])
def test_prompt_prefix_does_not_depend_on_the_query(style):
    rng = np.random.default_rng(0)
    ex = pd.DataFrame({"tau": rng.normal(size=3), "apoe": ["E3E3", "E3E4", "E4E4"], "n": [1, 2, 3]})
    prefixes = set()
    for q in (pd.DataFrame({"tau": [0.5], "apoe": ["E2E3"], "n": [4]}),
              pd.DataFrame({"tau": [-1234.5678], "apoe": [None], "n": [123456]})):   # wider than its column
        prefix, suffix = build_prompt_parts(ex, [0, 1, 0], q, "dx", style=style)
        prefixes.add(prefix)
        assert prefix + suffix == build_prompt(ex, [0, 1, 0], q, "dx", style=style)
        assert suffix.endswith("\n### Response: ") and "\n" not in suffix[:-len("\n### Response: ")]
    assert len(prefixes) == 1


def test_aligned_table_matches_the_full_table_when_the_query_fits():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(30):
        df = pd.DataFrame({"a": rng.normal(size=5) * 100, "b": rng.integers(0, 99, 5), "y": list("1001X")})
        df.loc[rng.integers(0, 5), "a"] = np.nan
        head, last = aligned_table(df.iloc[:4], df.iloc[4:], decimals=2)
        full = serialize_table(df, decimals=2)
        fits = len(serialize_table(df.iloc[:4], decimals=2).split("\n")[0]) == len(full.split("\n")[0])
        assert (head + last == full) == fits
        seen.add(fits)
        lines = (head + last).split("\n")
        assert len({len(x) for x in lines[:-1]}) == 1        # header and examples share one width
    assert seen == {True, False}


def test_build_prompt_golden():
    ex = pd.DataFrame({"tau": [5.1, 6.2], "ab42": [np.nan, 9.0]})
    q = pd.DataFrame({"tau": [5.5], "ab42": [8.25]})
    got = build_prompt(ex, [0, 1], q, "Impaired", decimals=2)
    expected = (f"{HEADER}\n### Instruction: The first 2 rows are labelled examples. The last row is missing a value "
                "in the 'Impaired' column, shown as X. Predict that value, where 1 means positive and 0 means "
                "negative. Respond only with 1 or 0.\n### Input:\n"
                " tau ab42 Impaired\n5.10  NaN        0\n6.20 9.00        1\n5.50 8.25        X\n### Response: ")
    assert got == expected


def test_zero_shot_and_serialised_prompt():
    q = pd.DataFrame({"tau": [5.5]})
    zero = build_prompt(q.iloc[:0], [], q, "y", style="text", decimals=1, task="Biomarkers.")
    assert "Biomarkers. Predict the value of 'y' for this patient" in zero
    assert zero.endswith("### Input:\ntau is 5.5, y is X.\n### Response: ")
    assert instruction("y", 3).startswith("The first 3 rows")


@pytest.mark.parametrize("k,min_pos", [(1, 1), (4, 1), (4, 2), (6, 0), (0, 1)])
def test_sample_shots(k, min_pos):
    y = np.array([0, 0, 0, 1, 0, 0, 1, 0])
    for s in range(20):
        idx = sample_shots(y, k, np.random.default_rng(s), min_positive=min_pos)
        assert len(idx) == k and len(set(idx)) == k
        assert y[idx].sum() >= min(min_pos, k)
    a = sample_shots(y, k, np.random.default_rng(3), min_pos)
    b = sample_shots(y, k, np.random.default_rng(3), min_pos)
    assert np.array_equal(a, b)


def test_sample_shots_positions_are_shuffled():
    y = np.array([1] + [0] * 9)
    firsts = {int(np.flatnonzero(y[sample_shots(y, 4, np.random.default_rng(s))] == 1)[0]) for s in range(40)}
    assert firsts == {0, 1, 2, 3}          # the guaranteed positive is not always first


@pytest.mark.parametrize("text,label", [("1", 1), (" 0", 0), ("0. Low tau", 0), ("Answer: 1\n", 1),
                                        ("10", None), ("0.5", None), ("yes", None), ("", None), ("X", None)])
def test_parse_label(text, label):
    assert parse_label(text) == label


def test_mcar_rate_and_no_imputation():
    X = pd.DataFrame(np.ones((400, 5)), columns=list("abcde"))
    X["g"] = "E3E3"
    X["i"] = np.arange(400)
    out = mcar(X, 0.3, np.random.default_rng(0))
    frac = out.isna().to_numpy().mean()
    assert 0.27 < frac < 0.33
    assert X.isna().sum().sum() == 0                             # input untouched
    kept = out.notna()
    assert (out.where(kept)[["a", "b"]].fillna(1) == 1).all().all()  # surviving cells unchanged
    assert "NaN" in serialize_table(out.head(20))
    assert mcar(X, 0.0, np.random.default_rng(0)).equals(X)


@pytest.mark.parametrize("call,match", [
    (lambda: serialize_table(DF, style="html"), "Invalid style"),
    (lambda: serialize_table(DF.to_numpy()), "Invalid df"),
    (lambda: sample_shots(np.zeros(3), 4, np.random.default_rng(0)), "Invalid k"),
    (lambda: sample_shots(np.zeros(5), 2, np.random.default_rng(0)), "Invalid min_positive"),
    (lambda: build_prompt(DF.iloc[:1], [1], DF, "y"), "Invalid query"),
    (lambda: build_prompt(DF.iloc[:1], [1], DF.iloc[:1], "tau"), "Invalid label_name"),
    (lambda: build_prompt(DF.iloc[:1], [1, 0], DF.iloc[1:], "y"), "Invalid example_labels"),
    (lambda: mcar(DF, 1.0, np.random.default_rng(0)), "Invalid rate"),
    (lambda: mcar(DF.to_numpy(), 0.1, np.random.default_rng(0)), "Invalid X"),
])
def test_errors(call, match):
    with pytest.raises(UserError, match=match):
        call()
