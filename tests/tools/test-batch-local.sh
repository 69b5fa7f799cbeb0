#!/usr/bin/env bash
# gst-generative-batch --engine local: the joined output of segments run as
# separate processes is what one gst-launch-1.0 process makes (bytes and
# timestamps for the video elements with a lossless encoder, exact sample
# count and 50 dB SNR for gansynth), with both joins; a killed task is run
# again alone; a task that fails for good fails the tool, naming the segment
# and its log; a killed run resumes without redoing finished segments.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=batch-lib.sh
source "$here/batch-lib.sh"
trap cleanup_out EXIT

# Same bytes as one process, per element, with a lossless encoder: 0.7 s
# segments (8-9 frames; 3 segments) on 2 processes.
same_as_one_process() {
  local name=$1 in=$2 chain=$3
  shift 3
  say "$name: $chain ($*)"
  reference "$name" "$in" "$chain"
  "$BATCH" "$in" "$OUT/$name.mkv" --pipeline "$chain" --encoder "$LOSSLESS" \
    --segment-seconds 0.7 --jobs 2 -q "$@"
  "${CHECK[@]}" video "$OUT/$name-ref.mkv" "$OUT/$name.mkv" "$in"
  [[ ! -e $OUT/$name.mkv.parts ]] || fail "the work folder was left behind"
}

same_as_one_process sr "$CLIP" "diffusionsr model-file=$MODELS/diffusionsr-x2.safetensors num-steps=1"
same_as_one_process inpaint "$SAMPLES/building-logo.webm" \
  "diffusioninpaint model-file=$MODELS/diffusioninpaint.safetensors mask-file=$SAMPLES/building-logo-mask.png num-steps=1"
same_as_one_process img2img "$CLIP" \
  "diffusionimg2img model-file=$MODELS/diffusionimg2img.safetensors num-steps=1"
same_as_one_process vae "$CLIP" \
  "vaeencode model-file=$MODELS/vae.safetensors ! vaedecode model-file=$MODELS/vae.safetensors"
# The other join: raw segments, encoded once.
same_as_one_process sr-reencode "$CLIP" \
  "diffusionsr model-file=$MODELS/diffusionsr-x2.safetensors num-steps=1" --join reencode
# A warm-up on a stateless chain changes nothing.
same_as_one_process sr-warmup "$CLIP" \
  "diffusionsr model-file=$MODELS/diffusionsr-x2.safetensors num-steps=1" --warmup-seconds 0.25

say "gansynth: the installed model, 2 s segments of the 8 s recording"
gs="gansynth model-file=$SRC/models/gansynth/gansynth.safetensors"
wav='audioconvert ! audio/x-raw,format=F32LE ! wavenc'
reference gansynth "$SAMPLES/noisy-speech.ogg" "$gs" "$wav"
"$BATCH" "$SAMPLES/noisy-speech.ogg" "$OUT/gansynth.wav" --pipeline "$gs" --encoder "$wav" \
  --segment-seconds 2 --jobs 2 -q
"${CHECK[@]}" audio "$OUT/gansynth-ref.mkv" "$OUT/gansynth.wav" 2 --min-snr 50

say "the default encoder (VP8 in WebM, copy join): the input's frames and timestamps"
"$BATCH" "$CLIP" "$OUT/vp8.webm" --pipeline "diffusionsr model-file=$MODELS/diffusionsr-x2.safetensors num-steps=1" \
  --segment-seconds 0.7 --jobs 2 -q
"$BATCH" "$OUT/vp8.webm" "$OUT/vp8-copy.mkv" --pipeline identity --media video --encoder "$LOSSLESS" -q \
  --segment-seconds 0.7 --jobs 2
reference vp8-copy "$OUT/vp8.webm" identity
"${CHECK[@]}" video "$OUT/vp8-copy-ref.mkv" "$OUT/vp8-copy.mkv" "$CLIP"

say "plan, task (JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job runs it) and join"
sr="diffusionsr model-file=$MODELS/diffusionsr-x2.safetensors num-steps=1"
wd=$OUT/k8s
"$BATCH" plan "$CLIP" "$OUT/k8s.mkv" --pipeline "$sr" --encoder "$LOSSLESS" --segment-seconds 0.7 \
  --workdir "$wd" | tee "$OUT/plan.log"
grep -q "^3 segments of 0.700 s in $wd\$" "$OUT/plan.log" || fail "plan did not say its segments"
for i in 2 0 1; do
  JOB_COMPLETION_INDEX=$i "$BATCH" task --workdir "$wd" >"$OUT/task-$i.log" 2>&1 &
done
wait
JOB_COMPLETION_INDEX=1 "$BATCH" task --workdir "$wd" 2>&1 | grep -q "segment 1 is already done" \
  || fail "a finished segment ran again"
"$BATCH" join --workdir "$wd"
"${CHECK[@]}" video "$OUT/sr-ref.mkv" "$OUT/k8s.mkv" "$CLIP"

# A chain slowed to 0.15 s a frame, so that tasks can be caught mid-run.
slow="identity sleep-time=150000 ! diffusionsr model-file=$MODELS/diffusionsr-x2.safetensors num-steps=1"
reference slow "$CLIP" "$slow"

say "faults: a task killed mid-run is run again alone"
wd=$OUT/kill.parts
"$BATCH" "$CLIP" "$OUT/kill.mkv" --pipeline "$slow" --encoder "$LOSSLESS" --segment-seconds 0.5 \
  --jobs 2 --workdir "$wd" --keep-workdir >"$OUT/kill.log" 2>&1 &
tool=$!
killed=$(kill_task_midway "$wd" 1)
wait "$tool" || { cat "$OUT/kill.log"; fail "the tool did not recover from a killed task"; }
cat "$OUT/kill.log"
grep -q "segment 1 failed (killed by signal 9" "$OUT/kill.log" || fail "the killed task was not reported"
[[ $(grep -c '^--- try' "$wd/logs/seg-00001.log") == 2 ]] || fail "segment 1 did not run exactly twice"
for i in 0 2 3; do
  [[ $(grep -c '^--- try' "$wd/logs/seg-0000$i.log") == 1 ]] || fail "segment $i ran again"
done
echo "killed pid $killed of segment 1; it alone ran again"
"${CHECK[@]}" video "$OUT/slow-ref.mkv" "$OUT/kill.mkv" "$CLIP"

say "faults: a run killed mid-way resumes where it stopped"
wd=$OUT/resume.parts
"$BATCH" "$CLIP" "$OUT/resume.mkv" --pipeline "$slow" --encoder "$LOSSLESS" --segment-seconds 0.5 \
  --jobs 1 --workdir "$wd" -q &
tool=$!
wait_for 60 test -e "$wd/seg-00001.seg" || fail "no segment finished"
kill -KILL "$tool"
wait "$tool" || true
# The task of the killed run dies with it (parent-death signal).
before=$(finished_snapshot "$wd")
n_before=$(wc -l <<<"$before")
echo "killed the run with $n_before segment(s) finished"
"$BATCH" "$CLIP" "$OUT/resume.mkv" --pipeline "$slow" --encoder "$LOSSLESS" --segment-seconds 0.5 \
  --jobs 2 --workdir "$wd" --keep-workdir 2>&1 | tee "$OUT/resume.log"
grep -q "$n_before already done, resuming" "$OUT/resume.log" || fail "the rerun did not resume"
while read -r line; do
  grep -qxF "$line" <<<"$(finished_snapshot "$wd")" || fail "a finished segment was redone: $line"
done <<<"$before"
"${CHECK[@]}" video "$OUT/slow-ref.mkv" "$OUT/resume.mkv" "$CLIP"

say "faults: a task that fails for good fails the tool, naming the segment and its log"
wd=$OUT/fail.parts
"$BATCH" "$CLIP" "$OUT/fail.mkv" --pipeline "$slow" --encoder "$LOSSLESS" --segment-seconds 0.5 \
  --jobs 2 --retries 1 --workdir "$wd" -q >"$OUT/fail.log" 2>&1 &
tool=$!
first=$(kill_task_midway "$wd" 2)
wait_for 60 bash -c "p=\$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"pid\"])' '$wd/progress/seg-00002.json' 2>/dev/null); [[ -n \$p && \$p != $first ]]" \
  || fail "segment 2 was not run again"
kill_task_midway "$wd" 2 >/dev/null
if wait "$tool"; then
  fail "the tool exited 0 with a segment that failed for good"
fi
cat "$OUT/fail.log"
grep -q "segment 2 \[1.000 s, 1.500 s) failed for good (killed by signal 9); log: $wd/logs/seg-00002.log" \
  "$OUT/fail.log" || fail "the failure does not name the segment and its log"
[[ ! -e $OUT/fail.mkv ]] || fail "an output was written"
echo "batch-local: all checks passed"
