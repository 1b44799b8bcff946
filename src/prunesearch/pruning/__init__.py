"""Pruning one network: the Schedule a trial runs and the TrialSettings its study's trials share
(trial), the prune / re-init / retrain loop, the figures of each iteration (figures:
`IterationResult`), the pruning methods (methods/: REGISTRY, one file per family), the
network's dependency graph (graph/), re-init, costs (sparsity, MACs, latency) and export
(masks folded, channels physically removed). Imports training and the foundation; knows
nothing of Optuna or MLflow, so that it is testable and usable without them."""
