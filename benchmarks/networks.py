"""What structured pruning costs beside retraining, network by network (issue 29): the set-up
of a trial's pruning (tracing the channels and their couplings), one pruning step, the
measurement of one iteration's costs with latency off (sparsity, parameters, MACs), and
rebuilding the model smaller (what a study that times latency also pays, before timing it),
against one retraining epoch on 1,000 images. Target: set-up plus cost measurement at most
10 s per iteration for every network, DenseNet-121 included.

    python -m benchmarks.networks [--networks cifar_cnn resnet56 torchvision:densenet121 ...]
    python -m benchmarks.networks --smoke   # two small networks, a few images
"""

import dataclasses
import sys
import time
from pathlib import Path

import torch

from benchmarks import common
from prunesearch.pruning import costs, export, methods
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.graph import channels
from prunesearch.pruning.methods.base import Context
from prunesearch.training import data as data_module
from prunesearch.training import models, train
from prunesearch.training.models import custom

NETWORKS = ("cifar_cnn", "resnet56", "vgg16_bn", "torchvision:resnet18",
            "torchvision:mobilenet_v2", "torchvision:efficientnet_b0",
            "torchvision:regnet_x_400mf", "torchvision:densenet121",
            "torchvision:resnext50_32x4d", "torchvision:convnext_tiny",
            "torchvision:shufflenet_v2_x0_5")
SMOKE_NETWORKS = ("cifar_cnn", "torchvision:mobilenet_v2")


@dataclasses.dataclass(frozen=True)
class Scale:
    train_images: int = 1000
    smoke: bool = False


def measure(name: str, split: data_module.Split, scale: Scale) -> dict:
    """Seconds of each part for network `name`, pruned by ln_structured at 30%."""
    model = models.build(name)
    classifier = custom.classifier_name(model, None) if models.is_custom(name) else "classifier"
    example = split.inputs(slice(1))
    start = time.perf_counter()
    targets = prunable_targets(model, include_classifier=False, classifier=classifier)
    found = channels.couplings(model, targets, example)
    targets = [target for target in targets if target[0] in found]
    set_up = time.perf_counter() - start
    method = methods.get("ln_structured")
    context = Context(options=method.Options(norm=1), couplings=found)
    start = time.perf_counter()
    method.apply(model, targets, 0.3, context)
    pruning = time.perf_counter() - start
    start = time.perf_counter()
    figures = costs.measure(model, example, reference=None, classifier=classifier)
    cost_s = time.perf_counter() - start
    start = time.perf_counter()
    export.shrink(model, example, classifier=classifier)
    shrink_s = time.perf_counter() - start
    settings = train.OptimizerSettings(lr=0.01, batch_size=128, momentum=0.9, weight_decay=0)
    start = time.perf_counter()
    train.train_epochs(model, split, epochs=1, settings=settings,
                       generator=torch.Generator().manual_seed(0))
    epoch = time.perf_counter() - start
    return {"network": name, "layers": len(targets), "set_up_s": set_up, "prune_s": pruning,
            "costs_s": cost_s, "overhead_s": set_up + pruning + cost_s, "shrink_s": shrink_s,
            "epoch_s": epoch,
            "macs_reduction": 1 - figures.macs / costs.macs(models.build(name), example)}


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--train-images", type=int, default=Scale.train_images)
    parser.add_argument("--data-dir", type=Path, default=data_module.default_data_dir(),
                        help="CIFAR-10 (its first --train-images training images are timed)")
    parser.add_argument("--json", type=Path, default=Path("networks.json"))
    args = parser.parse_args(argv)
    scale = Scale(train_images=64, smoke=True) if args.smoke else Scale(args.train_images)
    names = SMOKE_NETWORKS if args.smoke else args.networks
    with common.data_dir_for(args) as data_dir:
        train_split = data_module.load(data_dir=data_dir, val_size=50, train_subset=None,
                                       seed=0).train
    split = data_module.Split(train_split.images[:scale.train_images],
                              train_split.labels[:scale.train_images])
    rows = []
    for name in names:
        rows.append(measure(name, split, scale))
        print(f"{name}: {rows[-1]}", file=sys.stderr)
    common.write_json(args.json, {"torch": torch.__version__, "threads": torch.get_num_threads(),
                                  "train_images": len(split), "smoke": scale.smoke,
                                  "networks": rows})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ln_structured 30%, "
          f"latency off; one retraining epoch on {len(split)} images"
          + (" (--smoke: these figures mean nothing)" if scale.smoke else ""))
    print("| network | layers pruned | set-up (s) | pruning (s) | costs (s) | set-up + pruning + "
          "costs (s) | rebuilt smaller (s) | epoch (s) | MACs removed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['network']} | {row['layers']} | {row['set_up_s']:.2f} | "
              f"{row['prune_s']:.2f} | {row['costs_s']:.2f} | {row['overhead_s']:.2f} | "
              f"{row['shrink_s']:.2f} | {row['epoch_s']:.1f} | {row['macs_reduction']:.0%} |")


if __name__ == "__main__":
    main()
