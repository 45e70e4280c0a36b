#!/usr/bin/env bash
# Regenerate docs/results/ (the figures quoted in README.md and docs/results.md) on a 2-core CPU.
#   heldout/  the held-out subject (2 mm, real scan): the app's default fill (refine3d), the
#             original study's 2D pipeline and its 3D-blended variant with the default slice model,
#             and every classical baseline (2D and 3D) on three cases of every mask family
#   colin27/  the same on the second held-out brain (Colin27)
#   heldout_cohort/  the held-out cohort (8 real scans at about 1 mm, two datasets) at their own voxel
#             size: the default fill, the refiner without the mirror and the 3D baselines, three
#             lesions of each lesion-sized family per scan, figures +/- standard errors over scans
#             (no 32 mm cubes or large masks: scikit-image's biharmonic solve of 32,000 unknowns at
#             1 mm is too slow for a CPU run)
#   heldout_cohort_large/  the same scans with large lesions (6, 10 and 16 mm radius), two of each per scan
#   heldout_cohort_edge10/  the same scans with 10 mm blobs at the brain's edge (juxtacortical), three per scan
#   heldout_cohort_peri10/  the same scans with 10 mm blobs against the lateral ventricles (periventricular), three per scan
#   heldout_cohort_thick3/  the same scans as a clinical scan with 3 mm axial slices would show them
#             (scripts/make_thick_slices.py: slabs of 3 mm averaged), lesion-sized lesions as above
#   k3/, k7/  the study runs: the four slice models (VAE and GAN per kernel), their 2D pipeline and its
#             ablations beside the 2D and 3D biharmonic fills, on the held-out subject (the model cards quote them)
#   downstream/  tissue segmentation of simulated lesions before and after filling (both brains)
#   downstream_cohort/  the same on the 8 held-out cohort scans at their own voxel size (default fill,
#             biharmonic-3d, the FSL-style fill and the default slice model's 2D pipeline), and how far each
#             image's registration to the MNI152 template lies from the original's (--registration)
# Both bench runs take one torch thread each and run side by side; then the downstream run, alone
# on the machine, with two threads. CASES (default 6) lesions per family: the paired standard
# error that docs/results.md gives with every difference shrinks with their square root.
#   scripts/run_benchmarks.sh             every run above
#   scripts/run_benchmarks.sh refiner1mm  only the runs that a new 1 mm refiner changes, two at a time: both 2 mm
#             brains (heldout/, colin27/: the 1 mm refiner fills 2 mm scans too), the five held-out cohort runs
#             and both downstream runs (each records every shipped refiner's checksum)
#   scripts/run_benchmarks.sh brains2mm   only heldout/, colin27/, k3/ and k7/, one at a time (one core, about an hour)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
CASES=${CASES:-6}
DATA=../shared/data
FAMILIES=blob6,blob10,blob16,cube16,cube32,large,cube8,cube16_wm,blob
METHODS=default,refine3d-nomirror,slices2d,poisson3d,border-mean,biharmonic,harmonic-3d,biharmonic-3d,biharmonic-3d-mm,fsl-style
MODEL="$(cat resources/models/DEFAULT)"
mkdir -p docs/results
export OMP_NUM_THREADS=1

cohort_runs() {
    # the held-out cohort at native resolution (lesion-sized, then large lesions), then as 3 mm slices
    "$PYTHON" -m core.cli bench --cohort "$DATA/heldout_cohort" --methods refine3d,refine3d-nomirror,biharmonic-3d,biharmonic-3d-mm,harmonic-3d \
        --models "$MODEL" --cases 3 --out docs/results/heldout_cohort --quiet > docs/results/heldout_cohort.log 2>&1
    "$PYTHON" -m core.cli bench --cohort "$DATA/heldout_cohort" --methods refine3d,refine3d-nomirror,biharmonic-3d,biharmonic-3d-mm \
        --families blob12,blob20,blob32 --models "$MODEL" --cases 2 --out docs/results/heldout_cohort_large --quiet \
        > docs/results/heldout_cohort_large.log 2>&1
    "$PYTHON" -m core.cli bench --cohort "$DATA/heldout_cohort" --methods refine3d,refine3d-nomirror,biharmonic-3d \
        --families edge10 --models "$MODEL" --cases 3 --out docs/results/heldout_cohort_edge10 --quiet \
        > docs/results/heldout_cohort_edge10.log 2>&1
    "$PYTHON" -m core.cli bench --cohort "$DATA/heldout_cohort" --methods refine3d,refine3d-nomirror,biharmonic-3d \
        --families peri10 --models "$MODEL" --cases 3 --out docs/results/heldout_cohort_peri10 --quiet \
        > docs/results/heldout_cohort_peri10.log 2>&1
    local thick
    thick=$(mktemp -d)
    "$PYTHON" scripts/make_thick_slices.py "$DATA/heldout_cohort" "$thick/heldout_cohort_thick3" --thickness 3 > /dev/null
    "$PYTHON" -m core.cli bench --cohort "$thick/heldout_cohort_thick3" --methods refine3d,refine3d-nomirror,biharmonic-3d,biharmonic-3d-mm \
        --models "$MODEL" --cases 3 --out docs/results/heldout_cohort_thick3 --quiet > docs/results/heldout_cohort_thick3.log 2>&1
    rm -rf "$thick"
}

downstream_brains() {   # THREADS: the two 2 mm held-out brains
    OMP_NUM_THREADS=$1 "$PYTHON" -m core.cli bench --downstream --registration --out docs/results/downstream --quiet \
        > docs/results/downstream.log 2>&1
}

downstream_cohort() {
    OMP_NUM_THREADS=1 "$PYTHON" -m core.cli bench --downstream --cohort "$DATA/heldout_cohort" \
        --methods default,biharmonic-3d,fsl-style --models "$MODEL" --registration --out docs/results/downstream_cohort --quiet \
        > docs/results/downstream_cohort.log 2>&1
}

brain_bench() {   # FOLDER NAME: one 2 mm held-out brain, every method and family
    "$PYTHON" -m core.cli bench --image "$DATA/$1/t1_2mm.nii.gz" --brainmask "$DATA/$1/brainmask_2mm.nii.gz" \
        --methods "$METHODS" --models "$MODEL" --families "$FAMILIES" --cases "$CASES" --speed-cases 0 \
        --out "docs/results/$2" --quiet > "docs/results/$2.log" 2>&1
}

study_bench() {   # KERNEL: the study runs, each kernel's VAE and GAN, their 2D pipeline and its ablations
    "$PYTHON" -m core.cli bench --image "$DATA/heldout_subject/t1_2mm.nii.gz" \
        --brainmask "$DATA/heldout_subject/brainmask_2mm.nii.gz" --models "vae_k$1,gan_k$1" \
        --methods slices2d,no-prior,no-weighting,no-blend,border-mean,biharmonic,biharmonic-3d,fsl-style \
        --families cube16,cube32,blob,large --cases 3 --speed-cases 0 --out "docs/results/k$1" --quiet \
        > "docs/results/k$1.log" 2>&1
}

if [[ "${1:-}" == "refiner1mm" ]]; then
    # one core: the longest run (downstream_cohort); the other: the two 2 mm brains, the cohort benches, then the
    # 2 mm downstream run
    downstream_cohort &
    slow=$!
    brain_bench heldout_subject heldout
    brain_bench colin27 colin27
    cohort_runs
    downstream_brains 1
    wait "$slow"
    exit 0
fi

if [[ "${1:-}" == "brains2mm" ]]; then
    # one core, one run at a time: the two 2 mm held-out brains, then the study runs
    brain_bench heldout_subject heldout
    brain_bench colin27 colin27
    study_bench 3
    study_bench 7
    exit 0
fi

brain_bench heldout_subject heldout &
first=$!
brain_bench colin27 colin27 &
second=$!
cohort_runs
wait "$first" "$second"
study_bench 3 &
first=$!
study_bench 7
wait "$first"
downstream_brains 2
downstream_cohort
