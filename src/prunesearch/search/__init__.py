"""The search: `optimize` runs trials (objective, after-trial drawing of the front) against
the stores; the dense model trained once per study settings and cached; MO-ASHA early
stopping; recovery of interrupted trials; the failure policy; `--jobs` workers; the
TrialSettings its trials share (trials). The top layer
below the CLI: may import every other layer, but not Click."""
