"""The foundation: what every layer may use and that knows nothing of the others. Stop
requests (a flag that work checks), Pareto maths, a full disk named, the `setting()` field
helper behind every declared option, progress bars. Imports nothing of prunesearch but
`prunesearch.errors`; no Optuna, MLflow or Click."""
