"""How much of a structured model's MACs reduction becomes speed, in torch eager and under ONNX
Runtime, with and without rounding channels to a multiple of 8.

For each network, the dense model (random weights: latency does not depend on their values)
is pruned by ln_structured to 25 / 50 / 75% of each layer's channels removed (one iteration),
with round_to 1 and 8, shrunk (pruning.export.shrink), and timed against the dense model in
paired rounds (pruning.timing.time_against) at batch 1 and 64, in eager PyTorch and exported
to ONNX under ONNX Runtime (pruning.onnx_runtime). Printed per row: MACs reduction (dense MACs
/ pruned MACs) and, per runtime and batch size, the speed-up and its fraction of the MACs
reduction (1.0: every MAC removed is time saved).

    python -m benchmarks.deployed_speed [--networks cifar_cnn resnet20 vgg16_bn] [--rounds 15]
    python -m benchmarks.deployed_speed --smoke
"""

import torch

from benchmarks import common
from prunesearch.pruning import costs, export, methods, onnx_runtime, timing
from prunesearch.pruning.figures import BATCH_SIZES
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.methods.base import Context
from prunesearch.pruning.graph.channels import couplings
from prunesearch.pruning.methods.options import NormOptions
from prunesearch.training import models

EXAMPLE = torch.zeros(1, 3, 32, 32)


def pruned(name: str, width: int, amount: float, round_to: int) -> torch.nn.Module:
    """Network `name` with `amount` of each layer's channels removed by ln_structured."""
    torch.manual_seed(0)
    model = models.build(name, width=width).eval()
    if amount:
        method = methods.get("ln_structured")
        targets = prunable_targets(model, include_classifier=False)
        found = couplings(model, targets, EXAMPLE)
        targets = [target for target in targets if target[0] in found]
        method.apply(model, targets, amount,
                     Context(options=NormOptions(round_to=round_to), couplings=found))
    return export.shrink(model, EXAMPLE).eval()


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--networks", nargs="+", default=["cifar_cnn", "resnet20", "vgg16_bn"])
    parser.add_argument("--rounds", type=int, default=15, help="dense/pruned alternations")
    args = parser.parse_args(argv)
    amounts, roundings, rounds = (0.25, 0.5, 0.75), (1, 8), args.rounds
    widths = {name: models.default_width(name) for name in args.networks}
    if args.smoke:
        amounts, roundings, rounds = (0.5,), (1, 8), 1
        widths = {"cifar_cnn": 8}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {rounds} paired "
          f"rounds at batch {' and '.join(map(str, BATCH_SIZES))}; 'of MACs' = "
          "speed-up / MACs reduction")
    print(f"{'network':<10} {'cut':>4} {'round':>5} {'MACs x':>7} "
          + " ".join(f"{runtime + ' b' + str(batch):>20}" for runtime in ("eager", "ORT")
                     for batch in BATCH_SIZES))
    for name, width in widths.items():
        dense = pruned(name, width, 0.0, 1)
        dense_macs = costs.macs(dense, EXAMPLE)
        references = {"eager": dense, "ORT": onnx_runtime.OnnxModel.of(dense, EXAMPLE)}
        for amount in amounts:
            for round_to in roundings:
                slim = pruned(name, width, amount, round_to)
                reduction = dense_macs / costs.macs(slim, EXAMPLE)
                contenders = {"eager": slim, "ORT": onnx_runtime.OnnxModel.of(slim, EXAMPLE)}
                cells = []
                for runtime in ("eager", "ORT"):
                    for batch in BATCH_SIZES:
                        timed = timing.time_against(contenders[runtime], references[runtime],
                                                    EXAMPLE, batch, rounds=rounds)
                        cells.append(f"{timed.speedup:5.2f}x ({timed.speedup / reduction:4.2f} "
                                     "of MACs)")
                print(f"{name:<10} {amount:>4.0%} {round_to:>5} {reduction:>6.2f}x "
                      + " ".join(f"{cell:>20}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
