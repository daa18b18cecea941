#!/usr/bin/env bash
# Feature extraction of a large corpus as a Slurm job array, then one check.
#
#   jid=$(sbatch --parsable --array=0-63 examples/slurm_extract.sh VIDEOS FEATURES)
#   sbatch --dependency=afterany:$jid examples/slurm_extract.sh VIDEOS FEATURES
#
# The first line starts 64 array tasks. Task i extracts every 64th video from the
# i-th of the sorted list (--shard i/64) into the one FEATURES directory on the
# shared file system: the tasks need no coordination and no manifest, and their
# files never collide (one file pair per video and extractor, written atomically).
# The second line, without --array, runs once all tasks have ended, however they
# ended: it checks that every video has every feature, made with the same options,
# prints what is missing (video, extractor, why; one a line), exits 1 if anything
# is, and packs the webdataset tars for pretraining.
#
# Failures: a task that is killed, preempted or out of time leaves only whole
# files; run the array again (or let --requeue do it) and each task does only what
# it had not finished. A video that fails (corrupt, no audio) is reported in the
# task's log and does not fail the task; the check lists it. A video whose extractor
# raised an unexpected error (I/O, memory) is tried again up to --retries times.
#
# Settings (environment): FEATURE_LIST (default pixels,logmel,subtitles),
# EXTRACT_ARGS (more flags for densevid extract, e.g. "--option pixels.tint=true";
# the check must get the same ones, which it does here), DENSEVID (the command).
#
#SBATCH --job-name=densevid-extract
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=densevid-extract-%A_%a.log

set -euo pipefail

VIDEOS=${1:?usage: sbatch [--array=0-N] $0 VIDEOS FEATURES}
FEATURES=${2:?usage: sbatch [--array=0-N] $0 VIDEOS FEATURES}
FEATURE_LIST=${FEATURE_LIST:-pixels,logmel,subtitles}
DENSEVID=${DENSEVID:-densevid}
read -r -a extra <<<"${EXTRACT_ARGS:-}"
common=("$VIDEOS" -o "$FEATURES" --features "$FEATURE_LIST" "${extra[@]}")

if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  # An array task. With --array=0-N the shard is
  # $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; counting from the array's first
  # index also serves --array=1-N.
  index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
  status=0
  "$DENSEVID" -q extract "${common[@]}" \
    --shard "$index/$SLURM_ARRAY_TASK_COUNT" \
    --workers "${SLURM_CPUS_PER_TASK:-1}" --retries 2 || status=$?
  # 1: some videos failed and the others are done; the check reports them.
  # 2 (usage), 3 (every video failed), 130/143 (interrupted): the task failed.
  if [[ $status -eq 1 ]]; then exit 0; fi
  exit "$status"
fi

# The final step: check the whole corpus and pack the webdataset tars.
"$DENSEVID" extract "${common[@]}" --check --webdataset
