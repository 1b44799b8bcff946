"""Knowledge distillation (Hinton et al. 2015) while a pruned network retrains: the dense model
it came from is the teacher, its logits computed in the same step on the same augmented batch.

    loss = (1 - alpha) x cross-entropy(student, labels)
           + alpha x T^2 x KL(softmax(teacher / T) || softmax(student / T))

T^2 keeps the soft term's gradients on the scale of the hard one's as T grows.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class Distillation:
    """The teacher (never updated: eval mode, no gradients) and the loss's mix."""

    teacher: nn.Module
    alpha: float  # weight of the soft term, in (0, 1]
    temperature: float

    @classmethod
    def of(cls, teacher: nn.Module, *, alpha: float, temperature: float) -> "Distillation":
        """A frozen teacher: eval mode (BatchNorm statistics kept), no parameter trains."""
        teacher.eval()
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        return cls(teacher, alpha, temperature)

    def loss(self, logits: torch.Tensor, images: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
        """The mixed loss of a student's `logits` on a batch, the teacher run on `images`."""
        with torch.no_grad():
            teacher = self.teacher(images)
        t = self.temperature
        soft = functional.kl_div(functional.log_softmax(logits / t, dim=1),
                                 functional.log_softmax(teacher / t, dim=1),
                                 reduction="batchmean", log_target=True) * t * t
        if self.alpha == 1:
            return soft
        return (1 - self.alpha) * functional.cross_entropy(logits, labels) + self.alpha * soft
