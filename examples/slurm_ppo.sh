#!/bin/bash
# PPO on CartPole over N GPUs on M nodes with SLURM: one process per GPU, joined by JAX's own
# multi-controller runtime (`--distributed auto`: jax.distributed.initialize() reads SLURM_* and picks
# the coordinator, the process count and id, and each process's GPU). README: "Beyond one device".
#
#   sbatch --nodes=2 --gpus-per-node=4 --ntasks-per-node=4 examples/slurm_ppo.sh          # 8 GPUs
#   SEEDS_PER_GPU=512 RUN_DIR=/shared/runs/ppo-8gpu sbatch ... examples/slurm_ppo.sh
#   RESUME=1 RUN_DIR=/shared/runs/ppo-8gpu sbatch ... examples/slurm_ppo.sh              # requeued job
#
# The run folder must be on a filesystem every node sees (orbax writes each process's shards of the
# checkpoints there; process 0 writes config.json, metrics.jsonl, summary.json and the plots).
#SBATCH --job-name=curriculax-ppo
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=01:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-.}"
SEEDS_PER_GPU=${SEEDS_PER_GPU:-512}
GPUS=${SLURM_NTASKS:-8}                       # one task per GPU
SEEDS=$((SEEDS_PER_GPU * GPUS))               # the seed count must divide over every GPU
RUN_DIR=${RUN_DIR:-runs/ppo_cartpole-slurm-${SLURM_JOB_ID:-local}}
EXTRA=()
if [[ -n "${RESUME:-}" ]]; then EXTRA+=(--resume); fi

# One seed x many environments instead (the env axis split over every GPU):
#   --seeds 1 --ppo.num-envs $((8192 * GPUS)) --env-devices $GPUS
# A hyperparameter grid as one program (4 learning rates x SEEDS seeds, mesh axis 'hparams'):
#   --sweep lr=1e-4,3e-4,1e-3,3e-3
srun --kill-on-bad-exit=1 python -m experiments.ppo_cartpole \
    --distributed auto \
    --seeds "$SEEDS" \
    --run-dir "$RUN_DIR" \
    --no-progress \
    ${EXTRA[@]+"${EXTRA[@]}"}
