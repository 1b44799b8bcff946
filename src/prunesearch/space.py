"""Turn a study's search space and an Optuna trial into a Schedule."""

from collections.abc import Mapping

import optuna

from prunesearch.schedule import Choice, Fixed, ParamSpec, Schedule


def suggest(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> Schedule:
    """Sample every searched parameter (fixed ones are not Optuna parameters) into a Schedule;
    fields the space leaves out take the Schedule's defaults."""
    values = {}
    for name, param in space.items():
        if isinstance(param, Fixed):
            values[name] = param.value
        elif isinstance(param, Choice):
            values[name] = trial.suggest_categorical(name, list(param.choices))
        elif param.integer:
            values[name] = trial.suggest_int(name, param.low, param.high,
                                             step=param.step or 1, log=param.log)
        else:
            values[name] = trial.suggest_float(name, param.low, param.high,
                                               step=param.step, log=param.log)
    return Schedule(**values)

