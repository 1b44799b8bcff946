"""The deployed model as most serving stacks load it: ONNX, run by ONNX Runtime on the CPU.

Written by torch's own exporter (`torch.onnx.export`, the torch.export-based one), run by
`onnxruntime`; both come from the `onnx` extra. What eager PyTorch does is not what a server
does: a pruned model's speed-up is measured here, where it will run.
"""

import copy
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunesearch.errors import ExportError

OPSET = 18  # ONNX operator set written; ONNX Runtime 1.15 and later run it
INPUT, OUTPUT = "images", "logits"
TOLERANCE = 1e-4  # largest difference from PyTorch's logits an exported model may have


def available() -> bool:
    """Whether the `onnx` extra is installed (onnx, onnxscript and onnxruntime)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None
               for name in ("onnx", "onnxscript", "onnxruntime"))


def require(what: str) -> None:
    """Refuse in one line, naming the fix, where the `onnx` extra is missing."""
    if not available():
        raise ExportError(f"{what} needs ONNX Runtime: pip install 'prunesearch[onnx]'")


def write(model: nn.Module, example_images: torch.Tensor, path: Path) -> Path:
    """`model` (a plain module: masks folded, on any device, left there) as one ONNX file at
    `path`, any batch size, weights inside the file."""
    model = _cpu_copy(model)
    batch = torch.export.Dim("batch")
    # The exporter logs each of its steps at INFO and warns about its own internals.
    logging.getLogger("torch.onnx").setLevel(logging.WARNING)
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(model, (example_images.cpu()[:2].expand(2, -1, -1, -1),), str(path),
                          dynamo=True, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_shapes=({0: batch},),
                          external_data=False, verbose=False, report=False)
    return path


class OnnxModel:
    """An ONNX file in an ONNX Runtime session on the CPU, called like a module: images (a
    tensor) in, logits (a tensor) out. It uses as many threads as torch does, so that the two
    runtimes are compared on the same cores."""

    def __init__(self, path: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # Idle threads spinning after a run would take the cores from the model timed next
        # (timing alternates two sessions): measured, the paired speed-up of a model against
        # its copy spread over 0.2-1.1 with spinning on, 0.01-0.1 off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])

    @classmethod
    def of(cls, model: nn.Module, example_images: torch.Tensor) -> "OnnxModel":
        """`model` exported and loaded (through a temporary file, removed once loaded)."""
        with tempfile.TemporaryDirectory() as folder:
            return cls(write(model, example_images, Path(folder) / "model.onnx"))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().cpu().numpy().astype(np.float32, copy=False)
        return torch.from_numpy(self.session.run([OUTPUT], {INPUT: array})[0])

    def eval(self) -> "OnnxModel":
        return self  # always an inference session: the counterpart of nn.Module.eval


def check_matches(onnx_model: OnnxModel, model: nn.Module, images: torch.Tensor) -> float:
    """The largest difference between the logits of `onnx_model` and of `model` on `images`;
    an ExportError if it is over TOLERANCE."""
    model = _cpu_copy(model)
    with torch.no_grad():
        expected = model(images.cpu())
    difference = float((onnx_model(images) - expected).abs().max())
    if difference > TOLERANCE:
        raise ExportError(f"the ONNX model's logits differ from PyTorch's by {difference:.2g} "
                          f"(at most {TOLERANCE:g} allowed) on {len(images)} test images")
    return difference


def _cpu_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy on the CPU, where the exporter and ONNX Runtime run: the caller's
    model stays on its device (a trial timed on onnxruntime counts its MACs on the GPU)."""
    return copy.deepcopy(model).cpu().eval()
