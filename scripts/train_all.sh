#!/usr/bin/env bash
# Train the four shipped models exactly as they were trained (CPU, one thread each, in parallel).
#   scripts/train_all.sh          start the four runs in the background (logs in runs/logs/)
#   scripts/train_all.sh copy [PREFIX]  ship runs/<PREFIX><name> as resources/models/<name>/ (float16 weights,
#                                 config, model card)
#   scripts/train_all.sh ablation short VAE k3 runs per augmentation group, scored by `inpaint bench`
#   scripts/train_all.sh refiner  the 2 mm 3D refiner (retired 2026-12-06; `resume`, then `finetune`: see below)
#   scripts/train_all.sh refiner1mm  the 1 mm 3D refiner, on the cohort (CPU, or DEVICE=cuda for a GPU: see below)
#   scripts/train_all.sh refiner1mm_mirror  the same with mirror inputs, fine-tuned from it (see below)
#   scripts/train_all.sh refiner1mm_log  that one continued with each hole's error in decibels
#   scripts/train_all.sh refiner1mm_mirrorlesions  that one taught not to copy unpainted lesions
#   scripts/train_all.sh refiner1mm_mirrorlesions2  that one continued with more planted lesions (not shipped)
#   scripts/train_all.sh refiner1mm_patch48  that one continued on 48-voxel patches (the shipped 1 mm refiner)
#   scripts/train_all.sh refiner1mm_patch40  its control: the same steps on 40-voxel patches (not run)
#   scripts/train_all.sh refiner1mm_patch64  the shipped one continued on 64-voxel patches (not shipped)
#   scripts/train_all.sh refiner1mm_patch48b  that one continued 3000 more steps on 48-voxel patches (stopped at 2700: shipped)
#   scripts/train_all.sh refiner1mm_width16   the same from the 48-voxel one widened to 16 channels (a tie: stopped)
#   scripts/train_all.sh refiner1mm_patch48c  the shipped one continued once more, fresh patches (a tie, not kept)
#   scripts/train_all.sh refiner1mm_deep10    the shipped one continued with holes at least 10 mm deep (a tie, not kept)
#   scripts/train_all.sh refiner1mm_slabs     the shipped one continued with 30% of patches in thick slices (not kept)
#   scripts/train_all.sh refiner1mm_noise     the shipped one continued with the added noise of real scans' size (not kept)
#   scripts/train_all.sh refiner1mm_noise2    the same with twice the shipped runs' noise instead (not kept)
#   scripts/train_all.sh cohort   the four models retrained on the cohort's training split, one after another,
#                                 each from its shipped weights (runs/cohort_<name>; COHORT_MINUTES each, default 20)
# MINUTES (default 85, as used) is each run's wall-clock budget; PYTHON defaults to python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
MINUTES=${MINUTES:-85}
COMMON="--axis axial --size 96 --spacing 2.0 --latent 64 --width 12 --base 6 --batch-size 32
        --steps 20000 --checkpoint-every 200 --seed 0 --threads 1"

if [[ "${1:-}" == "copy" ]]; then
    # runs/<PREFIX><name> -> resources/models/<name>: float16 weights, config, card (held-out section kept)
    for name in vae_k3 vae_k7 gan_k3 gan_k7; do
        "$PYTHON" -m core.training.ship "runs/${2:-}$name" "resources/models/$name"
    done
    exit 0
fi

if [[ "${1:-}" == "cohort" ]]; then
    # Same architectures, kernels and grid as the study's four models; from the weights in resources/models
    # (learned on the template), on the 62 training scans of the cohort (its validation split is never drawn from)
    # with a fresh optimiser at half the learning rate of a new run. Then ship the ones the held-out check
    # keeps with python -m core.training.ship (docs/training.md)
    COHORT=${COHORT:-../shared/data/train_cohort}
    mkdir -p runs/logs
    for name in vae_k3 gan_k3 vae_k7 gan_k7; do
        kind=${name%_k*}; kernel=${name#*_k}
        lr=$([[ "$kind" == gan ]] && echo 1e-4 || echo 5e-4)
        resume=""
        [[ -f "runs/cohort_$name/train_state.json" ]] && resume="--resume"
        OMP_NUM_THREADS=1 "$PYTHON" -m core.cli train --kind "$kind" --kernel "$kernel" $COMMON \
            --minutes "${COHORT_MINUTES:-20}" --lr "$lr" --init "resources/models/$name" --cohort "$COHORT" \
            --out "runs/cohort_$name" $resume 2>&1 | tee -a "runs/logs/cohort_$name.log"
    done
    exit 0
fi

refiner_1mm() {
    # refiner_1mm OUT STEPS MINUTES WORKERS LOSS OPTIONS...: a 1 mm refiner run on the cohort's training split with
    # the settings the shipped runs share; OUT, STEPS, REFINER_MINUTES, WORKERS, DEVICE, COHORT and PATCH (voxels a
    # side, default 40) override the defaults
    local out=${OUT:-$1} steps=$2 minutes=$3 workers=$4 loss=$5
    shift 5
    mkdir -p runs/logs
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$PYTHON" -m core.training.refiner "$@" \
        --cohort "${COHORT:-../shared/data/train_cohort}" --patch "${PATCH:-40}" --batch-size 4 --steps "${STEPS:-$steps}" \
        --minutes "${REFINER_MINUTES:-$minutes}" --loss "$loss" --deform 0.3 --remap 0.3 --blur 0.3 --threads 1 \
        --workers "${WORKERS:-$workers}" --device "${DEVICE:-cpu}" --out "$out" 2>&1 | tee -a "runs/logs/$(basename "$out").log"
}

if [[ "${1:-}" == "refiner1mm" ]]; then
    # The 1 mm refiner (resources/refiner3d_1mm) on the training split of the cohort; its validation split is
    # never drawn from. Settings of the shipped run; the run writes a checkpoint every 25 steps to OUT.
    #   scripts/train_all.sh refiner1mm                      CPU, one thread: 2400 steps, about 50 min
    #   scripts/train_all.sh refiner1mm resume               continue it (raise STEPS / REFINER_MINUTES)
    #   DEVICE=cuda WORKERS=12 STEPS=40000 REFINER_MINUTES=9 scripts/train_all.sh refiner1mm
    #                                                        a GPU, unattended for 9 minutes; collect OUT
    # Then: inpaint bench --cohort ../shared/data/train_cohort --split validation --refiner OUT ... (docs/training.md)
    start=()
    [[ "${2:-}" == "resume" ]] && start=(--resume)
    refiner_1mm runs/refiner1mm 2400 125 0 lesion "${start[@]}" --spacing 1.0 --lr 5e-4 --log-every 25
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_mirror" ]]; then
    # The 1 mm refiner with mirror inputs: from the 2400-step refiner above (runs/refiner1mm, once shipped; widened so
    # that it starts as the default fill with the fixed mirror share 0.5), 90% of patches with the mirrored
    # hemisphere as the fill gives it; one training thread and one patch-making process (both CPU cores), 4000
    # planned steps, 75 min.   scripts/train_all.sh refiner1mm_mirror [resume]
    start=(--init "${INIT:-runs/refiner1mm}")
    [[ "${2:-}" == "resume" ]] && start=(--resume)
    refiner_1mm runs/refiner1mm_mirror 4000 75 1 lesion "${start[@]}" --mirror 0.9 --lr 3e-4 --log-every 50
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_log" ]]; then
    # The 1 mm refiner shipped before the next one: the mirror-input run above, continued to 8000 steps (runs/refiner1mm_mirror2, see
    # docs/training.md), then 3000 steps with each hole's error in decibels (--loss log), lr 1e-4 and fresh patches
    # (seed 1); 40 min on 2 CPU cores.   scripts/train_all.sh refiner1mm_log [resume]
    start=(--init "${INIT:-runs/refiner1mm_mirror2}")
    [[ "${2:-}" == "resume" ]] && start=(--resume)
    refiner_1mm runs/refiner1mm_log 3000 45 1 log "${start[@]}" --mirror 0.9 --lr 1e-4 --seed 1 --log-every 50
    exit 0
fi

mirror_lesions_1mm() {
    # mirror_lesions_1mm OUT INIT P SEED [resume]: a 1 mm refiner continued for 3000 steps (STEPS overrides; lr 1e-4, error in decibels)
    # whose mirrored patches show, a share P of them, an unpainted lesion where the mirror mirrors the hole
    local out=$1 init=$2 share=$3 seed=$4
    start=(--init "${INIT:-$init}")
    [[ "${5:-}" == "resume" ]] && start=(--resume)
    refiner_1mm "$out" 3000 120 1 log "${start[@]}" --mirror 0.9 --mirror-lesions "$share" --lr 1e-4 --seed "$seed" \
        --log-every 50
}

if [[ "${1:-}" == "refiner1mm_mirrorlesions" ]]; then
    # The 1 mm refiner shipped before the next one: the refiner1mm_log weights taught not to copy an unpainted lesion
    # on the other side (one mirrored patch in five shows one, --mirror-lesions 0.2; fresh patches, seed 2; 41 min on
    # 2 CPU cores; sha256 c13c179f).
    #   scripts/train_all.sh refiner1mm_mirrorlesions [resume]
    mirror_lesions_1mm runs/refiner1mm_mirrorlesions runs/refiner1mm_log 0.2 2 "${2:-}"
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_mirrorlesions2" ]]; then
    # Measured, not shipped (a tie on the validation bench; docs/training.md): the refiner1mm_mirrorlesions weights
    # continued with twice the share (--mirror-lesions 0.4; seed 3).   scripts/train_all.sh refiner1mm_mirrorlesions2 [resume]
    mirror_lesions_1mm runs/refiner1mm_mirrorlesions2 runs/refiner1mm_mirrorlesions 0.4 3 "${2:-}"
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_patch48" ]]; then
    # The shipped 1 mm refiner (sha256 fdedbe42; docs/training.md): the refiner1mm_mirrorlesions weights continued
    # for 3000 steps on 48-voxel patches (seed 4; 70 min on one 2-core machine, 135 min on a slower one).
    #   scripts/train_all.sh refiner1mm_patch48 [resume]   (the 120-min budget counts across resumes: to continue a
    #                                                      run it stopped, raise REFINER_MINUTES)
    PATCH=48 mirror_lesions_1mm runs/refiner1mm_patch48 runs/refiner1mm_mirrorlesions 0.2 4 "${2:-}"
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_patch40" ]]; then
    # The control of the run above: the same 3000 steps and seed on the shipped 40-voxel patches, which tells whether
    # its gain comes from the larger patches or from the extra steps.   scripts/train_all.sh refiner1mm_patch40 [resume]
    PATCH=40 mirror_lesions_1mm runs/refiner1mm_patch40 runs/refiner1mm_mirrorlesions 0.2 4 "${2:-}"
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_patch48b" ]]; then
    # The shipped 1 mm refiner (sha256 997b1c14; docs/training.md): the 48-voxel one (runs/refiner1mm_patch48)
    # continued on 48-voxel patches, fresh patches (seed 6), with the mirror of small holes aligned on their box plus
    # 8 mm as the fill does; planned 3000 steps, stopped by its 135-min budget (REFINER_MINUTES, counted across
    # resumes) at step 2700 on 2 busy CPU cores.   scripts/train_all.sh refiner1mm_patch48b [resume]
    PATCH=48 mirror_lesions_1mm runs/refiner1mm_patch48b runs/refiner1mm_patch48 0.2 6 "${2:-}"
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_patch48c" ]]; then
    # Measured, not kept (a tie on the validation split: docs/training.md). The shipped 1 mm refiner
    # (runs/refiner1mm_patch48b, sha256 997b1c14) continued once more as it was made: 48-voxel patches, fresh ones
    # (seed 7), 3000 steps within 240 min (REFINER_MINUTES, counted across resumes).
    #   scripts/train_all.sh refiner1mm_patch48c [resume]
    REFINER_MINUTES=${REFINER_MINUTES:-240} PATCH=48 mirror_lesions_1mm runs/refiner1mm_patch48c runs/refiner1mm_patch48b \
        0.2 7 "${2:-}"
    exit 0
fi

from_shipped_1mm() {
    # from_shipped_1mm OUT STEPS MINUTES SEED RESUME [OPTIONS...] (RESUME: "resume" or ""): the shipped 1 mm refiner
    # (resources/refiner3d_1mm, sha256 997b1c14, the weights of runs/refiner1mm_patch48b) continued as it was made
    # (48-voxel patches, lr 1e-4, error in decibels, mirror inputs with planted lesions), plus OPTIONS; MINUTES counts
    # across resumes (REFINER_MINUTES overrides)
    local out=$1 steps=$2 minutes=$3 seed=$4 start=(--init resources/refiner3d_1mm)
    [[ "$5" == "resume" ]] && start=(--resume)
    shift 5
    PATCH=48 refiner_1mm "$out" "$steps" "$minutes" 1 log "${start[@]}" --mirror 0.9 --mirror-lesions 0.2 --lr 1e-4 \
        --seed "$seed" --log-every 50 "$@"
}

if [[ "${1:-}" == "refiner1mm_deep10" ]]; then
    # Measured, not kept (a tie on the validation split: docs/training.md). The shipped 1 mm refiner
    # (resources/refiner3d_1mm, sha256 997b1c14) continued
    # as it was made, but with patches and holes centred at least 10 mm inside the brain (--centre-depth 10), where the
    # bench's lesions lie and where the default loses to biharmonic in the smoothest tissue (docs/experiments.md, sub-71);
    # seed 8, 3000 steps within 240 min (counted across resumes). Validate with edge10 too: the deep-only fine-tune of
    # an earlier round forgot the structure near the cortex; and peri10.   scripts/train_all.sh refiner1mm_deep10 [resume]
    from_shipped_1mm runs/refiner1mm_deep10 3000 240 8 "${2:-}" --centre-depth 10
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_slabs" ]]; then
    # Measured, not kept (a tie; at 5 mm -0.016 +/- 0.028 dB: docs/training.md). The shipped 1 mm refiner
    # (resources/refiner3d_1mm, sha256 997b1c14) continued
    # as it was made, with 30% of the patches seen through thick slices (--slabs 0.3: slabs of 2-5 voxels along a
    # random axis, interpolated back as the fill resamples a 1 x 1 x 3-5 mm scan); at 5 mm the refiner alone was below
    # biharmonic-3d-mm. Seed 9, 2000 steps within 150 min (counted across resumes).
    #   scripts/train_all.sh refiner1mm_slabs [resume]
    from_shipped_1mm runs/refiner1mm_slabs 2000 150 9 "${2:-}" --slabs 0.3
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_noise" ]]; then
    # Measured, not kept (-0.05 dB on the validation split: docs/training.md). The shipped 1 mm refiner
    # (resources/refiner3d_1mm, sha256 997b1c14) continued as it was made, but with the added white noise of real
    # scans' size: SD 0-0.006 of the intensity range per patch (--noise 0.006) instead of 0-0.03; the cohort's own
    # noise is 0.002-0.0035 (docs/training.md). Seed 10, 2000 steps within 150 min (counted across resumes).
    #   scripts/train_all.sh refiner1mm_noise [resume]
    from_shipped_1mm runs/refiner1mm_noise 2000 150 10 "${2:-}" --noise 0.006
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_noise2" ]]; then
    # Measured, not kept (-0.03 dB on the validation split: docs/training.md). The other side of refiner1mm_noise: the
    # shipped 1 mm refiner continued as it was made with twice the added noise (SD 0-0.06 per patch, --noise 0.06).
    # Seed 11, 1300 steps (to end within one session) within 150 min.   scripts/train_all.sh refiner1mm_noise2 [resume]
    from_shipped_1mm runs/refiner1mm_noise2 1300 150 11 "${2:-}" --noise 0.06
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_width16" ]]; then
    # Measured, not kept (a tie: docs/training.md): whether the 1 mm data support more capacity. refiner1mm_patch48b's
    # starting weights (runs/refiner1mm_patch48, sha256 fdedbe42: resources/refiner3d_1mm as of commit a6b8236)
    # widened from 12 to 16 channels (core.refine3d.widened: they start filling exactly alike) and continued as
    # refiner1mm_patch48b was, the same steps, patches and seed, so that run is its control; stopped at step 1350 of
    # 3000 after its step-1150 weights tied with the control's.   scripts/train_all.sh refiner1mm_width16 [resume]
    start=(--init runs/refiner1mm_patch48 --width 16)
    [[ "${2:-}" == "resume" ]] && start=(--resume)
    PATCH=48 refiner_1mm runs/refiner1mm_width16 3000 240 1 log "${start[@]}" --mirror 0.9 --mirror-lesions 0.2 \
        --lr 1e-4 --seed 6 --log-every 50
    exit 0
fi

if [[ "${1:-}" == "refiner1mm_patch64" ]]; then
    # Measured, not shipped (a tie on the validation bench, +0.05 dB on large lesions; docs/training.md): the shipped
    # 1 mm refiner (runs/refiner1mm_patch48) continued on 64-voxel patches, which hold the largest training hole
    # (32 voxels across) with 16 voxels of tissue on each side, as the fill's crops do (the hole's box plus 16 mm);
    # 700 steps (7 s each: 88 min on 2 CPU cores), seed 5.
    #   scripts/train_all.sh refiner1mm_patch64 [resume]
    PATCH=64 STEPS=${STEPS:-700} mirror_lesions_1mm runs/refiner1mm_patch64 runs/refiner1mm_patch48 0.2 5 "${2:-}"
    exit 0
fi

if [[ "${1:-}" == "refiner" ]]; then
    # The 3D refiner of the default fill (refine3d): MNI152 template and the ROBEX subject (skull-stripped
    # with its expert mask), one thread, in three phases:
    #   scripts/train_all.sh refiner [resume]   phase 1: error averaged over hole voxels, lr 5e-4 decaying over
    #                                           2000 planned steps (the shipped run was stopped by hand at 1400)
    #   scripts/train_all.sh refiner finetune   phase 2: from phase 1's weights, error averaged per lesion,
    #                                           lr 3e-4 over 1000 steps
    #   scripts/train_all.sh refiner deform     phase 3: from phase 2's weights, 70% of the patches rotated, scaled
    #                                           and warped (--deform 0.7), lr 3e-4 over 1200 steps (the shipped
    #                                           refiner is its last step; the shipped run started from
    #                                           resources/refiner3d while it held phase 2's weights, sha256 48b1674c)
    # It shipped as resources/refiner3d for 2 mm scans until 2026-12-06, when the 1 mm refiner replaced it
    # (docs/training.md, "One refiner for every voxel size"); a new 2 mm run is compared with
    # `python scripts/refiner_validation.py OLD NEW` (training-brain patches) and on 2 mm brains with `inpaint bench`.
    REFINER_MINUTES=${REFINER_MINUTES:-52}
    DATA_ARGS="resources/mni152/t1.nii.gz@0.35
        ../shared/data/robex_subject/t1_1p5mm.nii.gz:../shared/data/robex_subject/brainmask_1p5mm.nii.gz@0.65"
    mkdir -p runs/logs
    if [[ "${2:-}" == "deform" ]]; then
        OMP_NUM_THREADS=1 "$PYTHON" -m core.training.refiner --init runs/refiner3d_finetune --loss lesion --lr 3e-4 \
            --deform 0.7 --out runs/refiner3d_deform --minutes "$REFINER_MINUTES" --steps 1200 --batch-size 6 \
            --threads 1 --data $DATA_ARGS 2>&1 | tee -a runs/logs/refiner3d_deform.log
        exit 0
    fi
    if [[ "${2:-}" == "finetune" ]]; then
        OMP_NUM_THREADS=1 "$PYTHON" -m core.training.refiner --init runs/refiner3d --loss lesion --lr 3e-4 \
            --out runs/refiner3d_finetune --minutes "$REFINER_MINUTES" --steps 1000 --batch-size 6 --threads 1 \
            --data $DATA_ARGS 2>&1 | tee -a runs/logs/refiner3d_finetune.log
        exit 0
    fi
    resume=""
    [[ "${2:-}" == "resume" ]] && resume="--resume"
    OMP_NUM_THREADS=1 "$PYTHON" -m core.training.refiner $resume --out runs/refiner3d --minutes "$REFINER_MINUTES" --steps 2000 \
        --batch-size 6 --threads 1 --data $DATA_ARGS 2>&1 | tee -a runs/logs/refiner3d.log
    exit 0
fi

if [[ "${1:-}" == "ablation" ]]; then
    # Augmentation ablation (analysis only: the shipped models use all augmentations, decided in advance).
    ABLATION_STEPS=${ABLATION_STEPS:-600}
    mkdir -p runs/ablation/logs runs/ablation/bench
    export OMP_NUM_THREADS=1
    pids=()
    for spec in "none none" "geo geometric" "geo_int geometric+intensity" "all all"; do
        read -r short group <<<"$spec"
        "$PYTHON" -m core.cli train --kind vae --kernel 3 --axis axial --size 96 --spacing 2.0 --latent 64 \
            --width 12 --base 6 --batch-size 32 --steps "$ABLATION_STEPS" --checkpoint-every 200 --seed 0 \
            --threads 1 --augment "$group" --out "runs/ablation/aug_$short" >"runs/ablation/logs/aug_$short.log" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
    "$PYTHON" -m core.cli bench --models runs/ablation/aug_none,runs/ablation/aug_geo,runs/ablation/aug_geo_int,runs/ablation/aug_all \
        --methods default --families cube16 --cases 4 --speed-cases 0 --out runs/ablation/bench --json runs/ablation/bench/results.json
    exit 0
fi

mkdir -p runs/logs
export OMP_NUM_THREADS=1
for spec in "vae 3 0" "vae 7 0" "gan 3 2" "gan 7 2"; do
    read -r kind kernel niceness <<<"$spec"
    name="${kind}_k${kernel}"
    # GANs run at a slightly lower priority: the VAEs (likely default) get more of the shared CPU.
    nohup nice -n "$niceness" "$PYTHON" -m core.cli train --kind "$kind" --kernel "$kernel" $COMMON \
        --minutes "$MINUTES" --out "runs/$name" >"runs/logs/$name.log" 2>&1 &
    echo "$name: pid $!"
done
