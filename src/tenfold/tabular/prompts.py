"""Prompt building for TAP-GPT (paper 8): table serialisation, few-shot example selection, Alpaca frame.

Follows the behaviour of the public reference code (sophie-kearney/TAP-GPT, core_functions/data_processing.py),
re-written from its description: a prompt is an Alpaca-style frame

    {header}
    ### Instruction: {instruction}
    ### Input:
    {table}
    ### Response: 

whose table holds k labelled example rows followed by the query row with its label cell set to ``"X"``
(a whitespace-aligned text table like the reference's ``DataFrame.to_string(index=False)``, not markdown), or, for the
"serialised" variant, one "feature is value" sentence per row. Missing cells are written as ``NaN``, never
imputed. Each query draws its own k examples from the in-context pool, with at least `min_positive`
positive rows, then shuffles them. All functions here are pure (no model, no tokenizer state) and
deterministic given their `numpy.random.Generator`.

`build_prompt_parts` splits a prompt into a prefix (frame, instruction, table header and example rows) and a
suffix (the query row and the response cue), so that queries sharing their examples share a prefix whose
key/value state an LLM computes once. To keep the prefix independent of the query, the "table" column widths
come from the header and the example rows; a query cell wider than its column is written in full, one space
from its neighbour (whenever no query cell is wider, the table is the same as if all rows set the widths).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from tenfold.common.errors import UserError, check_choice

STYLES = ("table", "markdown", "text")
MASK = "X"                      # the symbol the reference prints in the query row's hidden label cell
NA_REP = "NaN"                  # missing cells stay visible as text (no imputation)
HEADER = ("Below is an instruction that describes a task, paired with an input that provides further "
          "context. Write a response that appropriately completes the request.")


def instruction(label_name: str, k: int, style: str = "table", task: str = "") -> str:
    """The task instruction (paraphrasing the reference's: predict the masked label, answer 1 or 0).

    Parameters
    ----------
    label_name : str
        Name of the label column shown in the table.
    k : int
        Number of labelled examples in the prompt (0 = zero-shot).
    style : {"table", "markdown", "text"}, default="table"
    task : str, default=""
        Optional one-sentence description of the data set, put first.
    """
    check_choice("style", style, STYLES)
    where = "row" if style != "text" else "patient"
    lead = f"{task.strip()} " if task else ""
    if k == 0:
        return (f"{lead}Predict the value of '{label_name}' for this {where}, where 1 means positive and 0 means "
                "negative. Respond only with 1 or 0.")
    return (f"{lead}The first {k} {where}s are labelled examples. The last {where} is missing a value in the "
            f"'{label_name}' column, shown as {MASK}. Predict that value, where 1 means positive and 0 means "
            "negative. Respond only with 1 or 0.")


def _fmt(v, decimals: int | None) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return NA_REP
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{decimals}f}" if decimals is not None else repr(float(v))
    return str(v)


def _round(df: pd.DataFrame, decimals: int | None) -> pd.DataFrame:
    if decimals is None:
        return df
    return df.apply(lambda c: c.round(decimals) if pd.api.types.is_float_dtype(c) else c)


def serialize_table(df: pd.DataFrame, style: str = "table", decimals: int | None = 3) -> str:
    """A DataFrame as prompt text.

    Parameters
    ----------
    df : DataFrame of shape (n_rows, n_columns)
    style : {"table", "markdown", "text"}, default="table"
        "table": a whitespace-aligned text table like the reference's ``df.to_string(index=False)`` (cells
        right-justified, one space apart; pandas' extra sign padding of numeric columns is not reproduced);
        "markdown": a pipe table;
        "text": one "column is value" sentence per row (the serialised prompt).
    decimals : int or None, default=3
        Round float cells to this many decimals (None: pandas' own formatting). A token-budget choice of
        ours; the reference prints pandas' default (6 significant digits).

    Returns
    -------
    str
        Rows separated by newlines; NaN cells read ``NaN``.

    Examples
    --------
    >>> print(serialize_table(pd.DataFrame({"a": [1.0, np.nan], "y": ["1", "X"]})))
        a y
    1.000 1
      NaN X
    """
    check_choice("style", style, STYLES)
    if not isinstance(df, pd.DataFrame):
        raise UserError(f"Invalid df: expected a pandas DataFrame, got {type(df).__name__}")
    if style == "table":
        return "\n".join(_aligned_lines(df, decimals))
    if style == "markdown":
        cols = [str(c) for c in df.columns]
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for row in df.itertuples(index=False):
            lines.append("| " + " | ".join(_fmt(v, decimals) for v in row) + " |")
        return "\n".join(lines)
    return "\n".join(", ".join(f"{c} is {_fmt(v, decimals)}" for c, v in zip(df.columns, row)) + "."
                     for row in df.itertuples(index=False))


def _aligned_lines(df: pd.DataFrame, decimals: int | None, width_rows: int | None = None) -> list[str]:
    """Header and row lines, cells right-justified to the widest of the header and the first `width_rows` rows."""
    cells = [[_fmt(v, decimals) for v in df[c].tolist()] for c in df.columns]
    rows = len(df) if width_rows is None else width_rows
    width = [max([len(str(c))] + [len(v) for v in col[:rows]]) for c, col in zip(df.columns, cells)]
    lines = [" ".join(str(c).rjust(w) for c, w in zip(df.columns, width))]
    return lines + [" ".join(col[i].rjust(w) for col, w in zip(cells, width)) for i in range(len(df))]


def aligned_table(examples: pd.DataFrame, query: pd.DataFrame, decimals: int | None = 3) -> tuple[str, str]:
    """(header and example lines, query line) of a right-aligned text table whose widths ignore the query.

    Parameters
    ----------
    examples : DataFrame of shape (k, c)
    query : DataFrame of shape (1, c), same columns
    decimals : int or None, default=3

    Returns
    -------
    head : str
        Header line and k example lines, each ending in a newline.
    last : str
        The query line (no newline). ``head + last`` equals ``serialize_table(concat([examples, query]))``
        whenever no query cell is wider than its column.

    Examples
    --------
    >>> h, q = aligned_table(pd.DataFrame({"a": [1.5], "y": ["1"]}), pd.DataFrame({"a": [22.25], "y": ["X"]}), 1)
    >>> print(h + q)
      a y
    1.5 1
    22.2 X
    """
    lines = _aligned_lines(pd.concat([examples, query], ignore_index=True), decimals, width_rows=len(examples))
    return "".join(line + "\n" for line in lines[:-1]), lines[-1]


def sample_shots(pool_y: np.ndarray, k: int, rng: np.random.Generator, min_positive: int = 1,
                 positive: int = 1) -> np.ndarray:
    """Indices of k in-context examples drawn from the pool, with at least `min_positive` positives, shuffled.

    Parameters
    ----------
    pool_y : ndarray of shape (n_pool,)
        Labels of the pool rows.
    k : int
        Number of examples (0 returns an empty array).
    rng : numpy.random.Generator
    min_positive : int, default=1
        Positive rows guaranteed among the k (the reference guarantees one AD example).
    positive : label value, default=1

    Returns
    -------
    ndarray of shape (k,), int
        Distinct pool indices in random order.
    """
    pool_y = np.asarray(pool_y)
    if k < 0 or k > len(pool_y):
        raise UserError(f"Invalid k: {k}; expected 0 <= k <= pool size {len(pool_y)}")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    pos = np.flatnonzero(pool_y == positive)
    need = min(min_positive, k)
    if need > len(pos):
        raise UserError(f"Invalid min_positive: {min_positive}; the pool has only {len(pos)} positive rows")
    first = rng.choice(pos, need, replace=False) if need else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(pool_y)), first)
    out = np.concatenate([first, rng.choice(rest, k - need, replace=False)]).astype(np.int64)
    rng.shuffle(out)
    return out


def build_prompt_parts(examples: pd.DataFrame, example_labels: Sequence, query: pd.DataFrame, label_name: str,
                       style: str = "table", decimals: int | None = 3, task: str = "",
                       header: str = HEADER) -> tuple[str, str]:
    """The Alpaca-style prompt for one query row, as (prefix, suffix).

    Parameters
    ----------
    examples : DataFrame of shape (k, p)
        The in-context rows (features only), in prompt order.
    example_labels : sequence of length k
        Their labels as written in the table ("0"/"1").
    query : DataFrame of shape (1, p)
        The row to classify; its label cell is written as ``X``.
    label_name : str
        Header of the label column (it must not clash with a feature name).
    style, decimals : see `serialize_table`
    task : str, default=""
        Optional data-set description for the instruction.
    header : str
        First line of the frame (the Alpaca preamble by default).

    Returns
    -------
    prefix : str
        Frame, instruction, table header and example rows; it does not depend on the query.
    suffix : str
        The query row and ``"\n### Response: "`` (the answer token follows directly).
    """
    check_choice("style", style, STYLES)
    if len(query) != 1:
        raise UserError(f"Invalid query: expected one row, got {len(query)}")
    if list(examples.columns) != list(query.columns):
        raise UserError("Invalid examples: columns differ from the query's")
    if label_name in query.columns:
        raise UserError(f"Invalid label_name: {label_name!r} is also a feature column")
    if len(example_labels) != len(examples):
        raise UserError(f"Invalid example_labels: {len(example_labels)} labels for {len(examples)} examples")
    ex = examples.reset_index(drop=True).assign(**{label_name: [str(v) for v in example_labels]})
    q = query.reset_index(drop=True).assign(**{label_name: [MASK]})
    if style == "table":
        head, last = aligned_table(ex, q, decimals)
    else:   # markdown and text rows do not depend on each other: split the serialised lines
        lines = serialize_table(pd.concat([ex, q], ignore_index=True), style=style, decimals=decimals).split("\n")
        head, last = "".join(line + "\n" for line in lines[:-1]), lines[-1]
    frame = f"{header}\n### Instruction: {instruction(label_name, len(examples), style, task)}\n### Input:\n"
    return frame + head, last + "\n### Response: "


def build_prompt(examples: pd.DataFrame, example_labels: Sequence, query: pd.DataFrame, label_name: str,
                 style: str = "table", decimals: int | None = 3, task: str = "", header: str = HEADER) -> str:
    """The Alpaca-style prompt for one query row: ``prefix + suffix`` of `build_prompt_parts` (same parameters).

    Returns
    -------
    str
        Ends with ``"### Response: "``; the answer token follows directly.
    """
    return "".join(build_prompt_parts(examples, example_labels, query, label_name, style, decimals, task, header))


_LABEL_RE = re.compile(r"(?<![\d.])([01])(?!\d|\.\d)")


def parse_label(text: str) -> int | None:
    """The first standalone 0 or 1 in a generation, or None when there is none (counted as unparsable).

    Examples
    --------
    >>> parse_label(" 1. The tau level is high"), parse_label("0"), parse_label("maybe 12"), parse_label("")
    (1, 0, None, None)
    """
    m = _LABEL_RE.search(text or "")
    return int(m.group(1)) if m else None


def mcar(X: pd.DataFrame, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of X with each cell set missing independently with probability `rate` (MCAR).

    Parameters
    ----------
    X : DataFrame of shape (n, p)
    rate : float in [0, 1)
    rng : numpy.random.Generator

    Returns
    -------
    DataFrame of shape (n, p)
        Existing NaNs are kept; no row or column is imputed.
    """
    if not isinstance(X, pd.DataFrame):
        raise UserError(f"Invalid X: expected a pandas DataFrame, got {type(X).__name__}")
    if not 0 <= rate < 1:
        raise UserError(f"Invalid rate: {rate}; expected 0 <= rate < 1")
    mask = rng.random(X.shape) < rate
    out = X.copy()
    for j, c in enumerate(out.columns):
        if mask[:, j].any():
            if not (pd.api.types.is_float_dtype(out[c]) or out[c].dtype == object):
                out[c] = out[c].astype("float64" if pd.api.types.is_numeric_dtype(out[c]) else object)
            out.loc[mask[:, j], c] = np.nan
    return out
