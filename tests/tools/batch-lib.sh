# Shared by the gst-generative-batch tests (sourced).  Environment from
# tests/tools/meson.build: GE_BATCH (the tool in the build tree),
# GE_SOURCE_ROOT, and the plugin's GST_PLUGIN_PATH and registry.
set -euo pipefail

SRC=${GE_SOURCE_ROOT:?}
BATCH=${GE_BATCH:?}
CHECK=(/usr/bin/python3 "$SRC/tests/tools/batchcheck.py")
SAMPLES=$SRC/samples
MODELS=$SRC/tests/elements/models
# Lossless: raw RGB frames in Matroska, so the joined output can be
# compared byte for byte with one process's.
LOSSLESS='videoconvert ! video/x-raw,format=RGB ! matroskamux'
CLIP=$SAMPLES/building.webm    # 24 frames, 240x136, 12 fps

OUT=$(mktemp -d "${TMPDIR:-/tmp}/batch-test.XXXXXX")
cleanup_out() { rm -rf "$OUT"; }

say() { printf '\n=== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# reference NAME INPUT CHAIN [ENCODER]: one gst-launch-1.0 process, as the
# tool's segment tasks run the chain.
reference() {
  local name=$1 in=$2 chain=$3 enc=${4:-$LOSSLESS} convert=videoconvert
  [[ $enc == *audio* || $enc == *wavenc* ]] && convert="audioconvert ! audioresample"
  # shellcheck disable=SC2086
  gst-launch-1.0 -q filesrc location="$in" ! decodebin ! $convert ! $chain ! $enc \
    ! filesink location="$OUT/$name-ref.mkv"
}

# Waits until @cond (a command) succeeds, for at most @seconds.
wait_for() {
  local seconds=$1
  shift
  local end=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

# The pid in a segment's progress file, when that task runs now.
task_pid() {
  local f=$1/progress/seg-$(printf %05d "$2").json
  [[ -s $f ]] || return 1
  /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$f" 2>/dev/null
}

# Kills segment @2's task of work folder @1 once it has made a frame and
# is not finished; prints the pid it killed.
kill_task_midway() {
  local wd=$1 i=$2 pid f
  f=$wd/progress/seg-$(printf %05d "$i").json
  wait_for 60 bash -c "[[ -s '$f' ]] && grep -q '\"units\": [1-9]' '$f'" \
    || fail "segment $i never started"
  pid=$(task_pid "$wd" "$i") || fail "no pid for segment $i"
  kill -KILL "$pid"
  echo "$pid"
}

# Snapshot (inode and mtime) of the finished segments of @1.
finished_snapshot() {
  local f
  for f in "$1"/seg-*.seg "$1"/seg-*.raw; do
    [[ -e $f ]] && stat -c '%n %i %Y.%y' "$f"
  done
  return 0
}
