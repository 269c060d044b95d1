"""Learning-rate factor per optimizer step: optional linear warm-up, then cosine to 0 or constant.

The article's scheduler reported a 2,000-step warm-up but never applied it to the optimizer,
so a faithful run has `warmup_inputs: 0`.
"""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, warmup_steps: int, kind: str) -> float:
    """Factor of the base lr for optimizer step `step` (0-based), as torch's CosineAnnealingLR."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
