"""Where a study lives: Optuna storage URLs opened with heartbeats, outages of the database or
the tracking server waited out and said (`outages`), MLflow tracking (the only layer that
imports MLflow), and what a study and a trial store as user attributes, typed (`records`).
Imports config and everything below it; no Click."""
