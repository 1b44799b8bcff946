"""Every seed a trial draws from, derived from the study's `seed` here and nowhere else, so that
the same study file, schedule and repeat give the same model. (The dense model draws its own
from the study's seed directly: search.dense.)"""

STEP_STRIDE = 7919  # a prime far above any number of repeats: the streams never meet
INIT_STRIDE = 1000


def repeat(seed: int, r: int) -> int:
    """Repeat `r`'s retraining (its batches' order and augmentation): repeat 0 is the study's."""
    return seed + r


def step(repeat_seed: int, iteration: int) -> int:
    """torch's global stream while repeat `repeat_seed` prunes and retrains `iteration` (random
    rankings, re-init, dropout); a gradual schedule, one phase, draws from iteration 1's."""
    return repeat_seed + STEP_STRIDE * iteration


def fresh_init(seed: int, iteration: int) -> int:
    """The fresh initialisation `reinit = random` restores at `iteration`."""
    return seed + INIT_STRIDE * iteration
