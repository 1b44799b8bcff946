"""Turn a study's search space and an Optuna trial into a Schedule."""

from collections.abc import Mapping

import optuna

from prunesearch import methods
from prunesearch.schedule import METHOD_OPTIONS, Choice, Fixed, ParamSpec, Schedule


def suggest(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> Schedule:
    """Sample every searched parameter (fixed ones are not Optuna parameters) into a Schedule;
    fields the space leaves out take the Schedule's defaults.

    The method is drawn first; an option only some methods read (e.g. `norm`) is sampled only
    in trials whose method reads it, so Optuna sees it as conditional on the method.
    """
    method = _sample(trial, "method", space["method"])
    used = methods.get(method).options
    values = {"method": method}
    for name, param in space.items():
        if name != "method" and (name not in METHOD_OPTIONS or name in used):
            values[name] = _sample(trial, name, param)
    return Schedule(**values)


def _sample(trial: optuna.Trial, name: str, param: ParamSpec):
    if isinstance(param, Fixed):
        return param.value
    if isinstance(param, Choice):
        return trial.suggest_categorical(name, list(param.choices))
    if param.integer:
        return trial.suggest_int(name, param.low, param.high, step=param.step or 1,
                                 log=param.log)
    return trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log)
