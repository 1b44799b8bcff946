"""prunesearch: search neural-network pruning schedules with Optuna, review them in MLflow."""
