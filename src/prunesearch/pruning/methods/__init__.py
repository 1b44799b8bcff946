"""Pruning-method registry: a new method is one file here plus one line in REGISTRY."""

import dataclasses

from prunesearch.pruning.methods.base import Context, NoOptions, PruningMethod, Target
from prunesearch.pruning.methods.magnitude import GlobalL1Method, L1UnstructuredMethod
from prunesearch.pruning.methods.random import RandomStructuredMethod, RandomUnstructuredMethod
from prunesearch.pruning.methods.structured import GlobalStructuredMethod, LnStructuredMethod
from prunesearch.pruning.methods.taylor import TaylorStructuredMethod

REGISTRY: dict[str, PruningMethod] = {
    method.name: method
    for method in (
        L1UnstructuredMethod(),
        GlobalL1Method(),
        RandomUnstructuredMethod(),
        LnStructuredMethod(),
        GlobalStructuredMethod(),
        TaylorStructuredMethod(),
        RandomStructuredMethod(),
    )
}


OPTION_FIELDS: dict[str, dataclasses.Field] = {
    field.name: field for method in REGISTRY.values()
    for field in dataclasses.fields(method.Options)}
"""Every method option by name, as its method declares it."""


def readers(option: str) -> list[str]:
    """The methods that read `option`."""
    return [name for name, method in REGISTRY.items()
            if option in {field.name for field in dataclasses.fields(method.Options)}]


def get(name: str) -> PruningMethod:
    """The method called `name`; a KeyError lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown pruning method {name!r}; one of {sorted(REGISTRY)}") from None


__all__ = ["OPTION_FIELDS", "REGISTRY", "Context", "NoOptions", "PruningMethod", "Target",
           "get", "readers"]

