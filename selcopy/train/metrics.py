"""Losses and the article's metrics, accumulated on the device without syncs.

Metric definitions (the README's Definitions), over every position of every sample:
    error%         wrong characters / all positions
    mask_error%    wrong characters inside the mask / masked characters
    sample_error%  samples with at least one wrong character / samples
plus sample error per difficulty, named by the task (`sample_error%_ops3`: programs of 3 operations).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selcopy.vocab import MASK

MAX_DIFFICULTY = 64  # difficulty bins kept for the breakdown; harder samples share the last bin
_LOSS, _SAMPLES, _POSITIONS, _WRONG, _MASKED, _MASK_WRONG, _SAMPLE_WRONG = range(7)
_BASE = 7


def token_loss(logits: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per position: logits (B, L, V), text (B, L)."""
    return F.cross_entropy(logits.flatten(0, 1), text.flatten())


def sequence_loss(logits: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The article's loss: one softmax over all L x V logits of a sample against its one-hot text.

    Equals `F.cross_entropy(logits.flatten(1), one_hot(text).flatten(1).float())`, without
    building the one-hot: -sum_l log softmax(logits.flatten(1))[l * V + text_l], batch mean.
    """
    B, L, V = logits.shape
    log_p = logits.reshape(B, L * V).float().log_softmax(-1)
    index = text + torch.arange(L, device=text.device) * V  # (B, L) flat index of each target
    return -log_p.gather(1, index).sum(1).mean()


LOSSES = {"token": token_loss, "sequence": sequence_loss}


def new_stats(device: torch.device | str) -> torch.Tensor:
    return torch.zeros(_BASE + 2 * MAX_DIFFICULTY, dtype=torch.float64, device=device)


@torch.no_grad()
def batch_stats(
    logits: torch.Tensor, text: torch.Tensor, masked: torch.Tensor, difficulty: torch.Tensor, loss: torch.Tensor
) -> torch.Tensor:
    """Counts of one batch as a vector (see `summarize`); `loss` is the batch's mean loss."""
    B, L = text.shape
    wrong = logits.argmax(-1) != text  # (B, L)
    in_mask = masked == MASK
    sample_wrong = wrong.any(1)
    level = difficulty.clamp(max=MAX_DIFFICULTY - 1)
    head = torch.stack([
        loss.double() * B,
        torch.tensor(B, device=text.device, dtype=torch.float64),
        torch.tensor(B * L, device=text.device, dtype=torch.float64),
        wrong.sum().double(),
        in_mask.sum().double(),
        (wrong & in_mask).sum().double(),
        sample_wrong.sum().double(),
    ])
    per_level = torch.bincount(level, minlength=MAX_DIFFICULTY).double()
    per_level_wrong = torch.bincount(level, weights=sample_wrong.double(), minlength=MAX_DIFFICULTY)
    return torch.cat([head, per_level, per_level_wrong])


@torch.no_grad()
def stacked_batch_stats(
    logits: torch.Tensor, text: torch.Tensor, masked: torch.Tensor, difficulty: torch.Tensor, loss: torch.Tensor
) -> torch.Tensor:
    """`batch_stats` of N members at once, one row each: logits (N, B, L, V), text, masked (N, B, L),
    difficulty (N, B), loss (N,) -> (N, K). Row i equals `batch_stats` of member i exactly (counts)."""
    N, B, L = text.shape
    wrong = logits.argmax(-1) != text  # (N, B, L)
    in_mask = masked == MASK
    sample_wrong = wrong.any(2)  # (N, B)
    level = difficulty.long().clamp(max=MAX_DIFFICULTY - 1)  # (N, B)
    count = lambda t: t.flatten(1).sum(1).double()  # noqa: E731  (N, ...) -> (N,)
    head = torch.stack([
        loss.double() * B,
        torch.full((N,), B, device=text.device, dtype=torch.float64),
        torch.full((N,), B * L, device=text.device, dtype=torch.float64),
        count(wrong), count(in_mask), count(wrong & in_mask), count(sample_wrong),
    ], 1)  # (N, 7)
    levels = torch.zeros(N, MAX_DIFFICULTY, dtype=torch.float64, device=text.device)
    per_level = levels.scatter_add(1, level, torch.ones_like(level, dtype=torch.float64))
    per_level_wrong = levels.scatter_add(1, level, sample_wrong.double())
    return torch.cat([head, per_level, per_level_wrong], 1)


def finite_loss(stats: torch.Tensor) -> torch.Tensor:
    """Whether the loss summed in `stats` (K,) or (N, K) is finite: a step whose loss was NaN or
    infinite leaves it NaN or infinite until the counts are reset."""
    return torch.isfinite(stats[..., _LOSS])


def summarize(stats: torch.Tensor, prefix: str, per: str | None = None) -> dict[str, float]:
    """Metric values from accumulated counts, names prefixed (`validation_`, `train_`).

    per: the task's `difficulty_column` (`ops` -> `sample_error%_ops3`); None leaves the
    breakdown by difficulty out.
    """
    s = stats.tolist()
    if s[_SAMPLES] == 0:
        return {}
    out = {
        f"{prefix}loss": s[_LOSS] / s[_SAMPLES],
        f"{prefix}error%": 100 * s[_WRONG] / s[_POSITIONS],
        f"{prefix}mask_error%": 100 * s[_MASK_WRONG] / max(s[_MASKED], 1),
        f"{prefix}sample_error%": 100 * s[_SAMPLE_WRONG] / s[_SAMPLES],
    }
    for k in range(MAX_DIFFICULTY if per is not None else 0):
        n = s[_BASE + k]
        if n:
            plus = "+" if k == MAX_DIFFICULTY - 1 else ""  # the last bin holds every harder sample too
            out[f"{prefix}sample_error%_{per}{k}{plus}"] = 100 * s[_BASE + MAX_DIFFICULTY + k] / n
    return out
