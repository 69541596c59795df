#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [tools/train.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT on every node (as mmseg's script).
# Elastic runs: MAX_RESTARTS (-> --max-restarts), RDZV_BACKEND / RDZV_ENDPOINT (-> --rdzv-*).
# With restarts, also pass --resume: a restarted worker then continues from the work dir's
# last_checkpoint (and starts from scratch when there is none yet).
# PYTHON selects the interpreter (default: python). GPUS = processes per node; on a
# CPU-only machine tools/train.py switches the backend to gloo.

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

EXTRA=()
if [ -n "${MAX_RESTARTS}" ]; then
    EXTRA+=(--max-restarts="${MAX_RESTARTS}")
fi
if [ -n "${RDZV_BACKEND}" ]; then
    EXTRA+=(--rdzv-backend="${RDZV_BACKEND}")
fi
if [ -n "${RDZV_ENDPOINT}" ]; then
    EXTRA+=(--rdzv-endpoint="${RDZV_ENDPOINT}")
fi

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
"${PYTHON}" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "${EXTRA[@]}" \
    $(dirname "$0")/train.py \
    $CONFIG \
    --launcher pytorch ${@:3}
