"""Model-agnostic training: loop, losses and metrics, schedule, checkpoints."""
