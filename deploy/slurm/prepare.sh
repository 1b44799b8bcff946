#!/usr/bin/env bash
# Prepare a study once, before its workers (workers.sh): check the study file, create the
# study, its MLflow experiment and study run, read the data, train the dense model into the
# shared cache. Submitted with its workers (docs/operations.md, "On a cluster"):
#
#   export PRUNESEARCH_STORAGE=postgresql://prunesearch:PASSWORD@dbhost/optuna  # not printed
#   export MLFLOW_TRACKING_URI=http://mlflowhost:5000 STUDY=$PWD/my-study.toml
#   export PRUNESEARCH_DATA_DIR=/shared/data PRUNESEARCH_CACHE_DIR=/shared/prunesearch-cache
#   prepare=$(sbatch --parsable deploy/slurm/prepare.sh)
#   sbatch --dependency=afterok:$prepare deploy/slurm/workers.sh
#
#SBATCH --job-name=prunesearch-prepare
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=prunesearch-prepare-%j.log
set -euo pipefail
: "${PRUNESEARCH_STORAGE:?set it to the study database URL (postgresql://...)}"
: "${MLFLOW_TRACKING_URI:?set it to the MLflow server (http://host:5000)}"
: "${STUDY:?set it to the study file (or a shipped study name)}"

exec prunesearch prepare --study "$STUDY" --tracking-uri "$MLFLOW_TRACKING_URI"
