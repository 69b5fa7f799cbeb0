#!/usr/bin/env bash
# gst-generative-batch --engine slurm on a real one-machine cluster
# (tools/slurm-local.sh: slurmctld, two slurmd, munge, all in a temporary
# folder): a job array of 4 segments gives the bytes one process gives; a
# task killed mid-run is run again alone; a whole job killed mid-way resumes
# without redoing finished segments; a task that fails for good fails the
# tool, naming the segment and its log.  The cluster is always torn down.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=batch-lib.sh
source "$here/batch-lib.sh"

SLURM_LOCAL=$SRC/tools/slurm-local.sh
teardown() {
  local rc=$?
  if [[ -n ${SLURM_LOCAL_DIR:-} ]]; then
    "$SLURM_LOCAL" stop "$SLURM_LOCAL_DIR" || rc=1
  fi
  cleanup_out
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

say "start a cluster"
t0=$SECONDS
eval "$("$SLURM_LOCAL" start)"
sinfo
echo "started in $((SECONDS - t0)) s"

slow="identity sleep-time=150000 ! diffusionsr model-file=$MODELS/diffusionsr-x2.safetensors num-steps=1"
reference slow "$CLIP" "$slow"
# (an array, not a function: "$!" of a function run in the background is
# its subshell, not the tool)
opts=(--pipeline "$slow" --encoder "$LOSSLESS" --segment-seconds 0.5 --engine slurm
  --poll-seconds 0.3 --cpus-per-task 1)

say "a job array of 4 segments, one task killed mid-run"
wd=$OUT/kill.parts
"$BATCH" "$CLIP" "$OUT/kill.mkv" "${opts[@]}" --workdir "$wd" --keep-workdir >"$OUT/kill.log" 2>&1 &
tool=$!
killed=$(kill_task_midway "$wd" 1)
wait "$tool" || { cat "$OUT/kill.log"; fail "the tool did not recover from a killed task"; }
cat "$OUT/kill.log"
grep -q "submitted job [0-9]*: 4 segment(s) as an array" "$OUT/kill.log" || fail "no job array"
grep -q "segment 1 failed (FAILED, exit code 0:9" "$OUT/kill.log" || fail "the killed task was not reported"
grep -q "submitted job [0-9]* for segment(s) 1\$" "$OUT/kill.log" || fail "segment 1 was not run again alone"
[[ $(grep -c '^=== segment 1 of' "$wd/logs/seg-00001.log") == 2 ]] || fail "segment 1 did not run twice"
for i in 0 2 3; do
  [[ $(grep -c "^=== segment $i of" "$wd/logs/seg-0000$i.log") == 1 ]] || fail "segment $i ran again"
done
echo "killed pid $killed of segment 1; it alone ran again"
"${CHECK[@]}" video "$OUT/slow-ref.mkv" "$OUT/kill.mkv" "$CLIP"

say "a whole job killed mid-way resumes where it stopped"
wd=$OUT/resume.parts
"$BATCH" "$CLIP" "$OUT/resume.mkv" "${opts[@]}" --workdir "$wd" -q --max-parallel 1 &
tool=$!
wait_for 60 test -e "$wd/seg-00001.seg" || fail "no segment finished"
kill -KILL "$tool"
wait "$tool" || true
scancel "$(head -1 "$wd/jobs")"
before=$(finished_snapshot "$wd")
n_before=$(wc -l <<<"$before")
echo "killed the run and its job with $n_before segment(s) finished"
"$BATCH" "$CLIP" "$OUT/resume.mkv" "${opts[@]}" --workdir "$wd" --keep-workdir 2>&1 | tee "$OUT/resume.log"
grep -q "$n_before already done, resuming" "$OUT/resume.log" || fail "the rerun did not resume"
while read -r line; do
  grep -qxF "$line" <<<"$(finished_snapshot "$wd")" || fail "a finished segment was redone: $line"
done <<<"$before"
"${CHECK[@]}" video "$OUT/slow-ref.mkv" "$OUT/resume.mkv" "$CLIP"

say "a task that fails for good fails the tool, naming the segment and its log"
wd=$OUT/fail.parts
"$BATCH" "$CLIP" "$OUT/fail.mkv" "${opts[@]}" --workdir "$wd" --retries 1 -q >"$OUT/fail.log" 2>&1 &
tool=$!
first=$(kill_task_midway "$wd" 2)
wait_for 60 bash -c "p=\$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"pid\"])' '$wd/progress/seg-00002.json' 2>/dev/null); [[ -n \$p && \$p != $first ]]" \
  || fail "segment 2 was not run again"
kill_task_midway "$wd" 2 >/dev/null
if wait "$tool"; then
  fail "the tool exited 0 with a segment that failed for good"
fi
cat "$OUT/fail.log"
grep -q "segment 2 \[1.000 s, 1.500 s) failed for good (FAILED, exit code 0:9); log: $wd/logs/seg-00002.log" \
  "$OUT/fail.log" || fail "the failure does not name the segment and its log"
[[ ! -e $OUT/fail.mkv ]] || fail "an output was written"
echo "batch-slurm: all checks passed in $((SECONDS - t0)) s"
