"""Shared plumbing of the tiny LM pre-training reproductions (MoLS, ELAS): data splits (bytes, or the corpus's own
BPE tokens), batches, fixed validation windows, evaluation with divergence capping, and the warm-up + cosine
schedule."""

from __future__ import annotations

import math

import numpy as np
import torch

UNIFORM_LOSS = math.log(256)  # a diverged run is scored as the uniform byte predictor (nats/byte)
_DATA: dict = {}


def byte_lm_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, tune_val, test_val) int64 byte streams of the Shakespeare+Milton corpus (90/5/5, contiguous).

    The first half of the validation split scores tuning runs; the second half gives the reported numbers.
    """
    if "lm" not in _DATA:
        from tenfold.data.text import byte_tokens, shakespeare_text, train_val_split

        train, val = train_val_split(byte_tokens(shakespeare_text()), 0.1)
        half = len(val) // 2
        _DATA["lm"] = (torch.from_numpy(train.astype(np.int64)), torch.from_numpy(val[:half].astype(np.int64)),
                       torch.from_numpy(val[half:].astype(np.int64)))
    return _DATA["lm"]


def token_lm_data(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """(train, tune_val, test_val, unigram) for the corpus under its own BPE vocabulary (`data.text.bpe_tokens`).

    Same 90/5/5 contiguous split as `byte_lm_data`; `unigram` is the test split's cross-entropy (nats/token) under
    the training split's unigram distribution: the context-free loss a learning model must beat.
    """
    key = f"bpe{vocab_size}"
    if key not in _DATA:
        from tenfold.data.text import bpe_tokens, train_val_split, unigram_cross_entropy

        train, val = train_val_split(bpe_tokens(vocab_size), 0.1)
        half = len(val) // 2
        _DATA[key] = (torch.from_numpy(train.astype(np.int64)), torch.from_numpy(val[:half].astype(np.int64)),
                      torch.from_numpy(val[half:].astype(np.int64)),
                      unigram_cross_entropy(train, val[half:], vocab_size))
    return _DATA[key]


def random_batch(tokens: torch.Tensor, seq_len: int, batch_size: int, gen: torch.Generator) -> torch.Tensor:
    """(batch_size, seq_len) windows at uniformly random offsets drawn from `gen`."""
    idx = torch.randint(0, len(tokens) - seq_len - 1, (batch_size,), generator=gen)
    return torch.stack([tokens[i:i + seq_len] for i in idx.tolist()])


def val_windows(tokens: torch.Tensor, seq_len: int, batch_size: int, n_batches: int) -> tuple[torch.Tensor, ...]:
    """`n_batches` fixed (batch_size, seq_len) batches at evenly spaced offsets: the same for every arm."""
    starts = torch.linspace(0, len(tokens) - seq_len - 2, n_batches * batch_size).long()
    return torch.stack([tokens[s:s + seq_len] for s in starts]).split(batch_size)


@torch.no_grad()
def evaluate(model, windows, cap: float = UNIFORM_LOSS) -> float:
    """Mean next-token loss (nats/token) over `windows`; non-finite or worse-than-uniform is capped at `cap`
    (the uniform predictor: log 256 for bytes, log V for a V-token vocabulary)."""
    model.eval()
    loss = float(np.mean([model(input_ids=w, labels=w).loss.item() for w in windows]))
    model.train()
    return loss if math.isfinite(loss) and loss < cap else cap


def warmup_cosine(step: int, steps: int, warmup_frac: float, floor: float = 0.1) -> float:
    """LR multiplier: linear warm-up over `warmup_frac * steps`, then cosine from 1 down to `floor`."""
    warm = max(1, int(warmup_frac * steps))
    if step < warm:
        return (step + 1) / warm
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def best_lr(kind: str, lr_grid, cells_dir, final_loss) -> tuple[float, dict]:
    """(best LR of `lr_grid` for arm `kind`, {"lr": tuning loss}); a one-point grid is used as is (no runs).

    Each (kind, lr) cell is one full-length tuning run, `final_loss(lr) -> float` (lower is better), computed once
    per `cells_dir` under a lock (`tenfold.harness.cells.locked_cells`), so parallel units share the grid.
    """
    from tenfold.harness.cells import locked_cells

    if len(lr_grid) == 1:
        return lr_grid[0], {}
    recs = locked_cells(cells_dir, {f"{kind}-{lr:g}": (lambda lr=lr: {"final": final_loss(lr)}) for lr in lr_grid})
    grid = {lr: recs[f"{kind}-{lr:g}"]["final"] for lr in lr_grid}
    best = min(lr_grid, key=lambda lr: grid[lr])
    return best, {f"{lr:g}": grid[lr] for lr in lr_grid}
