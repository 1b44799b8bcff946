"""What a study is: study files read and validated into a StudySpec (pure: no torch), checked
once against the network it names (preflight), the objectives a study can optimise, and the
search space (`space.suggest` on an Optuna trial -> Schedule). Imports
pruning, training and the foundation; only `space` touches Optuna; no MLflow or Click."""
