#!/usr/bin/env bash
# Train the four shipped models exactly as they were trained (CPU, one thread each, in parallel).
#   scripts/train_all.sh          start the four runs in the background (logs in runs/logs/)
#   scripts/train_all.sh copy     copy the finished weights + config into resources/models/<name>/
# MINUTES (default 80) is each run's wall-clock budget; PYTHON defaults to /work/venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/work/venv/bin/python}
MINUTES=${MINUTES:-80}
COMMON="--axis axial --size 96 --spacing 2.0 --latent 64 --width 12 --base 6 --batch-size 32
        --steps 20000 --minutes $MINUTES --checkpoint-every 200 --seed 0 --threads 1"

if [[ "${1:-}" == "copy" ]]; then
    for name in vae_k3 vae_k7 gan_k3 gan_k7; do
        mkdir -p "resources/models/$name"
        cp "runs/$name/model.safetensors" "runs/$name/config.json" "resources/models/$name/"
    done
    exit 0
fi

mkdir -p runs/logs
export OMP_NUM_THREADS=1
for spec in "vae 3 0" "vae 7 0" "gan 3 2" "gan 7 2"; do
    read -r kind kernel niceness <<<"$spec"
    name="${kind}_k${kernel}"
    # GANs run at a slightly lower priority: the VAEs (likely default) get more of the shared CPU.
    nohup nice -n "$niceness" "$PYTHON" -m core.cli train --kind "$kind" --kernel "$kernel" $COMMON \
        --out "runs/$name" >"runs/logs/$name.log" 2>&1 &
    echo "$name: pid $!"
done
