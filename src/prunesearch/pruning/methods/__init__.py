"""Pruning-method registry: a new method is one file here plus one line in REGISTRY.

The registry is a catalog readable without torch (a study file is checked against it, and
reading a study never imports torch): each method's name, whether it removes whole channels,
and its options. Its implementation, a `base.PruningMethod` in its family's file, is imported
the first time a trial applies it."""

import dataclasses
import functools
import importlib
from dataclasses import dataclass

from prunesearch.pruning.methods.options import (ChannelOptions, NoOptions, NormOptions,
                                                 TaylorOptions, UnstructuredOptions)


@dataclass(frozen=True)
class Method:
    """A pruning method as the catalog knows it; `apply` and `prunes_classifier` are its
    implementation's (`base.PruningMethod` says what they must do)."""

    name: str
    structured: bool  # removes whole output channels (filters, neurons), not single weights
    Options: type  # a frozen dataclass of `setting` fields (methods.options)
    implementation: str  # "module:Class" within prunesearch.pruning.methods
    ranks_globally: bool = False  # one ranking across layers decides each layer's amount

    @functools.cached_property
    def _implementation(self):
        module, _, cls = self.implementation.partition(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()

    def apply(self, model, targets, amount, context) -> None:
        """Prune `amount` (a fraction, or per unit: base.Amounts) of `targets`."""
        from prunesearch.pruning.methods.base import Amounts

        amounts = amount if isinstance(amount, Amounts) else Amounts(float(amount))
        self._implementation.apply(model, targets, amounts, context)

    def prunes_classifier(self, options) -> bool:
        return self._implementation.prunes_classifier(options)


REGISTRY: dict[str, Method] = {
    method.name: method
    for method in (
        Method("l1_unstructured", False, UnstructuredOptions, "magnitude:L1UnstructuredMethod"),
        Method("global_l1", False, UnstructuredOptions, "magnitude:GlobalL1Method",
               ranks_globally=True),
        Method("random_unstructured", False, UnstructuredOptions,
               "random:RandomUnstructuredMethod"),
        Method("ln_structured", True, NormOptions, "structured:LnStructuredMethod"),
        Method("global_structured", True, NormOptions, "structured:GlobalStructuredMethod",
               ranks_globally=True),
        Method("taylor_structured", True, TaylorOptions, "taylor:TaylorStructuredMethod"),
        Method("random_structured", True, ChannelOptions, "random:RandomStructuredMethod"),
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


def get(name: str) -> Method:
    """The method called `name`; a KeyError lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown pruning method {name!r}; one of {sorted(REGISTRY)}") from None


__all__ = ["OPTION_FIELDS", "REGISTRY", "Method", "NoOptions", "get", "readers"]
