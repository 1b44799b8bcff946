"""Turn a study's search space and an Optuna trial into a Schedule."""

from collections.abc import Mapping

import optuna

import dataclasses

from prunesearch.pruning import methods
from prunesearch.pruning.schedule import (FAMILY_KEYS, STAGE_FACTOR, Choice, Fixed, ParamSpec,
                                          Schedule)


def suggest(trial: optuna.Trial, space: Mapping[str, ParamSpec], stages: int = 0) -> Schedule:
    """Sample every searched parameter (fixed ones are not Optuna parameters) into a Schedule;
    fields the space leaves out take their defaults.

    The method, the schedule family and the allocation are drawn first; a method's own
    options (e.g. `norm`), a family's own keys (e.g. `amount`, `final_sparsity`) and an
    allocation's (`sensitivity_weight`; under `stages`, one factor per stage of the network's
    `stages`, parameters stage_factor_1, ...) are sampled only in trials that read them, so
    Optuna sees them as conditional.
    """
    method = _sample(trial, "method", space["method"])
    family = _sample(trial, "schedule", space.get("schedule", Fixed("iterative")))
    allocation = _sample(trial, "allocation", space.get("allocation", Fixed("uniform")))
    options = {field.name for field in dataclasses.fields(methods.get(method).Options)}
    other = {key for name, keys in FAMILY_KEYS.items() if name != family for key in keys}
    unread = {"method", "schedule", "allocation", STAGE_FACTOR, *other}
    if allocation != "sensitivity":
        unread.add("sensitivity_weight")
    values = {name: _sample(trial, name, param) for name, param in space.items()
              if name not in unread
              and (name not in methods.OPTION_FIELDS or name in options)}
    factors = {f"{STAGE_FACTOR}_{i + 1}": _sample(trial, f"{STAGE_FACTOR}_{i + 1}",
                                                   space[STAGE_FACTOR])
               for i in range(stages)} if allocation == "stages" else {}
    return Schedule.from_dict({"method": method, "schedule": family, "allocation": allocation,
                               **values, **factors})


def searched(space: Mapping[str, ParamSpec]) -> list[str]:
    """The parameters a study samples (its lists and ranges), in study-file order."""
    return [name for name, param in space.items() if not isinstance(param, Fixed)]


def make_sampler(name: str, seed: int, space: Mapping[str, ParamSpec]
                 ) -> optuna.samplers.BaseSampler:
    """The study file's `sampler`; constant_liar keeps concurrent TPE workers from proposing
    the same point."""
    if name == "grid":
        return optuna.samplers.GridSampler(
            {key: list(param.choices) for key, param in space.items()
             if isinstance(param, Choice)}, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _sample(trial: optuna.Trial, name: str, param: ParamSpec):
    if isinstance(param, Fixed):
        return param.value
    if isinstance(param, Choice):
        return trial.suggest_categorical(name, list(param.choices))
    if param.integer:
        return trial.suggest_int(name, param.low, param.high, step=param.step or 1,
                                 log=param.log)
    return trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log)
