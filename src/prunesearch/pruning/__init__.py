"""Pruning one network: the Schedule a trial runs, the prune / re-init / retrain loop and the
figures of each iteration (`IterationResult`), the pruning methods (methods/: REGISTRY, one
file per family), re-init, costs (sparsity, MACs, latency) and export (masks folded,
channels physically removed). Imports training and the foundation; knows nothing of Optuna
or MLflow, so that it is testable and usable without them."""
