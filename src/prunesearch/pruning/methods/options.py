"""The options pruning methods read, declared as `setting` fields: what a study file may set as
`space.<option>`, validated from here without importing torch. Methods sharing an option
share its class."""

from dataclasses import dataclass

from prunesearch.foundation.fields import setting


@dataclass(frozen=True)
class NoOptions:
    """A method that reads no option."""


@dataclass(frozen=True)
class UnstructuredOptions:
    prune_classifier: bool = setting(
        default=True, help="also prune the final linear layer's weights",
        allowed="true or false")


@dataclass(frozen=True)
class ChannelOptions:
    """Options every structured method reads."""

    round_to: int = setting(
        default=1, help="structured methods: leave each layer a multiple of this many "
                        "channels (1: any number), the widths vector kernels run fastest at; "
                        "the channels kept are rounded down to one, as torch-pruning's "
                        "round_to does, but never below it",
        allowed="an integer >= 1", check=lambda v: v >= 1)


@dataclass(frozen=True)
class NormOptions(ChannelOptions):
    norm: int = setting(default=1, help="rank channels by their L1 or L2 norm",
                        allowed="1 or 2", check=lambda v: v in (1, 2))


@dataclass(frozen=True)
class TaylorOptions(ChannelOptions):
    ranking_batches: int = setting(
        default=8, help="unaugmented training batches the importance is averaged over",
        allowed="an integer >= 1", check=lambda v: v >= 1)
