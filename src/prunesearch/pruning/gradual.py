"""Gradual magnitude pruning's ramp (Zhu & Gupta 2017, "To prune, or not to prune"): sparsity
rises during training along

    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3,  t = t0, t0 + dt, ..., t0 + n dt

fast at first and slowly at the end, while the learning rate is still high. Here s_i = 0,
t0 = 0, and the events fall at dt, 2 dt, ..., n dt (n dt: the ramp's end, `ramp_end` of the
training steps); the training after the last event fine-tunes at s_f.
"""


def event_steps(total_steps: int, ramp_end: float, prune_every: int) -> list[int]:
    """The training steps after which the model is pruned: every `prune_every` steps up to
    `ramp_end` of `total_steps`, at least one."""
    events = max(1, round(ramp_end * total_steps) // prune_every)
    return [prune_every * k for k in range(1, events + 1)]


def target(step: int, last_event: int, final: float) -> float:
    """s_t at `step` (the ramp ends at `last_event` with `final`)."""
    done = min(step / last_event, 1.0)
    return final * (1 - (1 - done) ** 3)


def amount_between(before: float, after: float) -> float:
    """The fraction of what is still unpruned that takes sparsity from `before` to `after`:
    what a method prunes at an event (methods prune a fraction of what remains)."""
    return 1 - (1 - after) / (1 - before)
