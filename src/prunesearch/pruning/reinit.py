"""What happens to the surviving weights after each pruning step.

- finetune: keep the trained values (Han et al., 2015).
- rewind:   reset every parameter and BatchNorm statistic to its value at initialisation or at
            an early epoch of dense training (lottery ticket: Frankle & Carbin, 2019).
- random:   draw a fresh initialisation: the pruned architecture trained from scratch.

Masks are kept in every case: values are written to `weight_orig`, never to the masked
`weight`, so pruned entries stay zero.
"""

from collections.abc import Callable, Mapping

import torch
from torch import nn

from prunesearch.pruning.methods.base import pruning_hooks
from prunesearch.pruning.schedule import REINIT_OPTIONS



def load_keeping_masks(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy `state` (an unpruned model's state_dict) into `model`, routing each pruned tensor
    to its `<name>_orig` so its mask still applies."""
    own = model.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            own[key + "_orig" if key + "_orig" in own else key].copy_(value)
    # The masked tensors are recomputed only by the next forward pass; refresh them now so
    # that `weight == weight_orig * weight_mask` holds at every moment.
    for module, hook in pruning_hooks(model):
        hook(module, None)


def apply(
    option: str,
    model: nn.Module,
    *,
    rewind_state: Mapping[str, torch.Tensor],
    fresh_state: Callable[[], Mapping[str, torch.Tensor]],
) -> None:
    """Apply re-init `option`; `fresh_state` is only called for `random`."""
    if option == "finetune":
        return
    if option == "rewind":
        load_keeping_masks(model, rewind_state)
    elif option == "random":
        load_keeping_masks(model, fresh_state())
    else:
        raise KeyError(f"unknown re-init option {option!r}; one of {list(REINIT_OPTIONS)}")
