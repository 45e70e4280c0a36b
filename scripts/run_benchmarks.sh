#!/usr/bin/env bash
# Regenerate docs/results/ (the figures quoted in README.md and docs/results.md) on a 2-core CPU.
#   default/  the default model against the baselines on three cases per family, plus the speed
#             comparison with the reference implementation's settings (1000 iterations, 64 restarts)
#             on the first case; run alone with torch's default threads so its timings are clean
#   k3/  both kernel-3 models, default pipeline and the three ablations, plus the baselines
#   k7/  both kernel-7 models, the same
#   speed/  the default model at the default and the reference settings on one 8 mm cube
# k3, k7 and speed then run side by side with one thread each (about 55 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
CASES=${CASES:-3}
FAMILIES=cube16,cube32,blob,large
mkdir -p docs/results
"$PYTHON" -m core.cli bench --methods default,reference,border-mean,biharmonic,fsl-style \
    --models "$(cat resources/models/DEFAULT)" --families large,cube8,cube16,cube16_wm,cube32,blob --cases 3 \
    --speed-cases 1 --out docs/results/default --quiet > docs/results/default.log 2>&1
export OMP_NUM_THREADS=1
"$PYTHON" -m core.cli bench --models vae_k3,gan_k3 --families "$FAMILIES" --cases "$CASES" --speed-cases 0 \
    --out docs/results/k3 --quiet > docs/results/k3.log 2>&1 &
k3=$!
"$PYTHON" -m core.cli bench --models vae_k7,gan_k7 --families "$FAMILIES" --cases "$CASES" --speed-cases 0 \
    --out docs/results/k7 --quiet > docs/results/k7.log 2>&1 &
k7=$!
"$PYTHON" -m core.cli bench --methods default,reference,biharmonic --models "$(cat resources/models/DEFAULT)" \
    --families cube8 --cases 1 --speed-cases 1 --out docs/results/speed --quiet > docs/results/speed.log 2>&1 &
speed=$!
wait "$k3" "$k7" "$speed"
