"""What prunesearch's tests and benchmarks build their inputs from, shipped like
optuna.testing: study files written as a shipped study plus changes (`studies`), and CIFAR-10
folders in the original format, learnable or random (`data`). Nothing else in the package
imports it."""
