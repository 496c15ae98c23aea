"""Heads on frozen word features: Flax modules, losses, batches, jitted steps, schedules, checkpoints."""
