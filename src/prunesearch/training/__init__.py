"""Training a network on a study's images: the data (sources/: CIFAR-10 and -100, image
folders, the user's own) in memory with its validation split and batched augmentation on the
device, `train_epochs` / `evaluate`, and the model registry (models/: the CIFAR networks,
torchvision classifiers, the user's own). Imports only the foundation; knows nothing of
pruning, Optuna or MLflow."""
