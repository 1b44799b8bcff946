"""Your images, read the fast way: image folders read once and cached, then trained from as
uint8 tensors with batched augmentation, against torchvision's ImageFolder + DataLoader.

CIFAR-10 (--data-dir) is written out as image folders of JPEGs (quality 90) at each --sizes,
upscaled (bicubic), its training images --copies times over, every tenth in val/ (so that the
training folder is used whole, as a folder with its own validation split is). Then, per size:

- reading: the first read (decode, convert, resize, crop, a thread per core, written to the
  cache) and a cached read (memory-mapped), in images per second; the cached read's seconds;
- memory: a fresh process reads the cached folder and makes one pass over its training images
  in batches; the anonymous memory it gained at its peak (what it needs; the mapped file's
  pages are the page cache's to drop) against the training images' decoded size, and its
  peak resident set for reference;
- training: one epoch of --train-images images of the CIFAR CNN (width 32, SGD, batch 128,
  random crop with an eighth of the size as padding, and flip) through prunesearch's pipeline
  and through ImageFolder + DataLoader (2 workers) with torchvision's transforms, taking
  turns for --rounds rounds; images per second and their ratio (median of the rounds').

    python -m benchmarks.images --data-dir ../shared/data/cifar10-subset [--sizes 64 128]
    python -m benchmarks.images --smoke
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torchvision import datasets, transforms

from benchmarks import common
from prunesearch.testing import data as testing_data
from prunesearch.training import data as data_module
from prunesearch.training import models
from prunesearch.training.train import OptimizerSettings, train_epochs

BATCH = 128


def read(folder: Path, size: int, cache: Path) -> data_module.ImageData:
    return data_module.load(data_dir=folder, val_size=0.1, train_subset=None, seed=0,
                            source="imagefolder", path=folder, image_size=size, cache_dir=cache)


def memory(folder: Path, size: int, cache: Path) -> dict:
    """Peak anonymous memory (over what the process held before reading: torch and the
    interpreter) and peak resident set of a fresh process that reads the cached folder and
    passes over its training images once; RssAnon and VmHWM from /proc/self/status."""
    script = f"""
import json, torch
from pathlib import Path
from prunesearch.training import data
def anon():
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["RssAnon"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024
before = anon()[0]
loaded = data.load(data_dir=Path({str(folder)!r}), val_size=0.1, train_subset=None, seed=0,
                   source="imagefolder", path=Path({str(folder)!r}), image_size={size},
                   cache_dir=Path({str(cache)!r}))
order = torch.randperm(len(loaded.train))
peak_anon = anon()[0]
for start in range(0, len(order), {BATCH}):
    loaded.train.inputs(order[start:start + {BATCH}])
    peak_anon = max(peak_anon, anon()[0])
print(json.dumps({{"decoded_bytes": loaded.train.images.numel(),
                  "peak_anon_bytes": peak_anon - before, "peak_rss_bytes": anon()[1]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.splitlines()[-1])


def loader(folder: Path, size: int, images: int) -> torch.utils.data.DataLoader:
    """ImageFolder + DataLoader, as a notebook writes it: decode, augment and normalise each
    image in 2 worker processes."""
    steps = transforms.Compose([
        transforms.RandomCrop(size, padding=data_module.crop_padding(size)),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(data_module.MEAN, data_module.STD)])
    found = datasets.ImageFolder(str(folder / "train"), transform=steps)
    subset = torch.utils.data.Subset(found, torch.randperm(len(found))[:images].tolist())
    return torch.utils.data.DataLoader(subset, batch_size=BATCH, shuffle=True, num_workers=2,
                                       persistent_workers=True)


def training(folder: Path, size: int, cache: Path, images: int, rounds: int) -> dict:
    loaded = read(folder, size, cache)
    index = torch.randperm(len(loaded.train))[:images]
    split = data_module.Split(loaded.train.images[index], loaded.train.labels[index],
                              loaded.train.mean, loaded.train.std)
    settings = OptimizerSettings(lr=0.01, batch_size=BATCH, momentum=0.9, weight_decay=5e-4)
    ours, theirs = (models.build("cifar_cnn", num_classes=loaded.num_classes) for _ in range(2))
    optimizer = common.sgd(theirs)
    batches = loader(folder, size, images)
    generator = torch.Generator().manual_seed(0)
    seconds = common.take_turns({
        "prunesearch": lambda: train_epochs(ours, split, epochs=1, settings=settings,
                                            generator=generator),
        "dataloader": lambda: common.train_on(theirs, optimizer, batches)}, rounds)
    rates = {name: [len(split) / s for s in times] for name, times in seconds.items()}
    return {"prunesearch_img_s": statistics.median(rates["prunesearch"]),
            "dataloader_img_s": statistics.median(rates["dataloader"]),
            "ratio": common.median_ratio(rates, "prunesearch", "dataloader")}


def measure(data_dir: Path, work: Path, sizes: list[int], copies: int, images: int,
            rounds: int) -> list[dict]:
    rows = []
    for size in sizes:
        folder = testing_data.cifar_as_image_folder(data_dir, work / f"jpeg{size}", size=size,
                                                    extension="jpg", copies=copies,
                                                    val_every=10)
        cache = work / f"cache{size}"
        count = sum(1 for _ in folder.rglob("*.jpg"))
        start = time.perf_counter()
        read(folder, size, cache)
        first = time.perf_counter() - start
        start = time.perf_counter()
        read(folder, size, cache)
        cached = time.perf_counter() - start
        row = {"size": size, "images": count, "first_img_s": count / first,
               "cached_img_s": count / cached, "cached_s": cached,
               **memory(folder, size, cache), **training(folder, size, cache, images, rounds)}
        print(row, file=sys.stderr)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--copies", type=int, default=2, help="the training images, repeated")
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.data_dir is None and not args.smoke:
        parser.error("--data-dir is required (or --smoke, on tiny generated data)")
    sizes, copies, images, rounds = ([40], 1, 100, 1) if args.smoke else (
        args.sizes, args.copies, args.train_images, args.rounds)
    with tempfile.TemporaryDirectory() as tmp, common.data_dir_for(args) as data_dir:
        rows = measure(data_dir, Path(tmp), sizes, copies, images, rounds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; JPEG folders, "
          f"CIFAR CNN width 32, {images} training images per epoch, {rounds} round(s)"
          + (" (--smoke: these figures mean nothing)" if args.smoke else ""))
    print("| size | images | first read (img/s) | cached read (img/s) | cached read (s) | "
          "peak anon / decoded | peak RSS (MB) | prunesearch (img/s) | DataLoader (img/s) | "
          "ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['size']} | {row['images']:,} | {row['first_img_s']:,.0f} | "
              f"{row['cached_img_s']:,.0f} | {row['cached_s']:.2f} | "
              f"{row['peak_anon_bytes'] / row['decoded_bytes']:.2f} | "
              f"{row['peak_rss_bytes'] / 2**20:,.0f} | {row['prunesearch_img_s']:.0f} | "
              f"{row['dataloader_img_s']:.0f} | {row['ratio']:.2f}x |")


if __name__ == "__main__":
    main()
