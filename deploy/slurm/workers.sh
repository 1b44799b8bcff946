#!/usr/bin/env bash
# The workers of a prepared study (prepare.sh): a job array, one GPU per task, at most 8
# tasks at once (%8). Each task runs trials until the study has n_trials complete, then exits
# 0; tasks that start after that find it complete and exit at once. Submit it with
# --dependency=afterok on the prepare job (see prepare.sh); each worker also waits for the
# preparation itself, at most an hour. scancel (or a preemption) sends SIGTERM: the running
# trial is failed and queued again within a second, for another task.
#
#SBATCH --job-name=prunesearch-workers
#SBATCH --array=1-32%8
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --signal=TERM@120
#SBATCH --output=prunesearch-worker-%A_%a.log
set -euo pipefail
: "${PRUNESEARCH_STORAGE:?set it to the study database URL (postgresql://...)}"
: "${MLFLOW_TRACKING_URI:?set it to the MLflow server (http://host:5000)}"
: "${STUDY:?set it to the study file (or a shipped study name)}"

exec prunesearch optimize --study "$STUDY" --tracking-uri "$MLFLOW_TRACKING_URI" \
    --device cuda --wait-for-prepare 3600
