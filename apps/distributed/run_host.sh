#!/usr/bin/env bash
# Start this host's worker of a multi-worker run: TF_CONFIG from a JSON file, then `keras-cnn train`.
#
#   host 10.0.0.1:  apps/distributed/run_host.sh apps/distributed/tf_config_host0.json resnet18 --data tfds:cifar10 ...
#   host 10.0.0.2:  apps/distributed/run_host.sh apps/distributed/tf_config_host1.json resnet18 --data tfds:cifar10 ...
#
# Every host runs the same command (same model, data, --batch-size = the GLOBAL batch, --seed) with
# its own TF_CONFIG file. Use the same --out on a shared file system if you have one (each worker
# then restores the checkpoint itself); otherwise the chief's checkpoint is broadcast on resume.
# If a worker dies, stop the others and run the same commands again: they resume after the last
# finished epoch.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 TF_CONFIG.json MODEL [keras-cnn train options...]" >&2
    exit 2
fi
config_file=$1
shift
TF_CONFIG="$(tr -d '\n' < "$config_file")"
export TF_CONFIG
exec "${KERAS_CNN:-keras-cnn}" train "$@" --strategy multi_worker
