"""Pruning-method registry: a new method is one file here plus one line in REGISTRY."""

from prunesearch.methods.base import Context, PruningMethod, Target
from prunesearch.methods.magnitude import GlobalL1Method, L1UnstructuredMethod
from prunesearch.methods.random import RandomStructuredMethod, RandomUnstructuredMethod
from prunesearch.methods.structured import GlobalStructuredMethod, LnStructuredMethod
from prunesearch.methods.taylor import TaylorStructuredMethod

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


def get(name: str) -> PruningMethod:
    """The method called `name`; a KeyError lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown pruning method {name!r}; one of {sorted(REGISTRY)}") from None


__all__ = ["REGISTRY", "Context", "PruningMethod", "Target", "get"]

