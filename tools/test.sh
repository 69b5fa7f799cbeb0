#!/usr/bin/env bash
# test.sh: the whole test suite, as CI runs it (.ci/run).
#
#   1. installs missing packages (tools/deps.sh)
#   2. build/       the normal build; every suite (engine, plugin, ...)
#   3. build-asan/  engine only, AddressSanitizer + UBSan; suite "engine"
#   4. build-asan-plugin/  the plugin too, under ASan + UBSan with LSan's
#                   leak check: the storm test (tests/elements/test-storm.c)
#   5. build-fuzz/  clang + libFuzzer; a bounded run of each fuzz target
#
# and ends with one line "N passed, N failed", counted from each build's
# meson-logs/testlog.json.  Only OK and EXPECTEDFAIL count as passed: a
# skipped check is not a passed one.  A build dir that fails to configure or
# build counts as one failure.  Exits non-zero when anything failed.
#
# Environment: GE_BUILD_DIR, GE_ASAN_DIR, GE_ASAN_PLUGIN_DIR, GE_FUZZ_DIR
# rename the build dirs;
# GE_FUZZ_SECONDS sets the length of each fuzz run (default 60).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${GE_BUILD_DIR:-build}
ASAN=${GE_ASAN_DIR:-build-asan}
ASAN_PLUGIN=${GE_ASAN_PLUGIN_DIR:-build-asan-plugin}
FUZZ=${GE_FUZZ_DIR:-build-fuzz}

start=$(date +%s)
passed=0
failed=0
failures=()

log() { printf '\n=== %s\n' "$*"; }

# Configures @dir with the given options, reusing it when it exists.  The
# options go through "meson configure" because "meson setup --reconfigure"
# of meson 1.0 drops a changed c_args.  A dir that cannot be reconfigured
# (say, made with another compiler) is wiped and made again, since only
# this script owns it.
setup() {
  local dir=$1
  shift
  if [[ -f "$dir/meson-private/coredata.dat" ]]; then
    if meson configure "$dir" "$@" >/dev/null \
      && meson setup --reconfigure "$dir"; then
      return 0
    fi
    echo "test.sh: reconfiguring $dir failed; starting it afresh"
  fi
  rm -rf "$dir"
  meson setup "$dir" "$@"
}

# Adds the results in @dir/meson-logs/testlog.json to the totals.  @min is
# the fewest tests the stage must have run: a stage that silently runs
# nothing must not look green.
count() {
  local dir=$1 stage=$2 min=$3 log="$1/meson-logs/testlog.json" out
  if [[ ! -s "$log" ]]; then
    failed=$((failed + 1))
    failures+=("$stage: no test log (meson test did not run)")
    return
  fi
  # One JSON object per line; python3 is there because meson needs it.
  if ! out=$(python3 - "$log" "$stage" "$min" <<'PY'
import json, sys
path, stage, minimum = sys.argv[1], sys.argv[2], int(sys.argv[3])
ok = bad = 0
for line in open(path, encoding="utf-8"):
    line = line.strip()
    if not line:
        continue
    t = json.loads(line)
    if t.get("result") in ("OK", "EXPECTEDFAIL"):
        ok += 1
    else:
        bad += 1
        print("FAILED %s: %s (%s)" % (stage, t.get("name"), t.get("result")))
if ok + bad < minimum:
    bad += 1
    print("FAILED %s: ran %d tests, expected at least %d" % (stage, ok + bad - 1, minimum))
print("COUNT %d %d" % (ok, bad))
PY
  ); then
    failed=$((failed + 1))
    failures+=("$stage: cannot read $log")
    return 0
  fi
  local line ok bad
  while IFS= read -r line; do
    case $line in
      COUNT\ *)
        read -r _ ok bad <<<"$line"
        passed=$((passed + ok))
        failed=$((failed + bad))
        echo "$stage: $ok passed, $bad failed"
        ;;
      FAILED\ *) failures+=("${line#FAILED }") ;;
    esac
  done <<<"$out"
}

# Runs one stage: configure, build, test, count.  Never aborts the script,
# so that one broken build dir still lets the others report.
#   stage NAME DIR MIN-TESTS WHAT [meson setup args] -- [meson test args]
# WHAT is "all" (ninja builds everything first) or "test-deps" (meson test
# builds only what the selected tests need).  TEST_ENV holds VAR=value
# pairs for the test run only.
TEST_ENV=()
stage() {
  local name=$1 dir=$2 min=$3 what=$4
  shift 4
  local -a setup_args=() rebuild=(--no-rebuild)
  while [[ $# -gt 0 && $1 != -- ]]; do
    setup_args+=("$1")
    shift
  done
  [[ $# -gt 0 ]] && shift

  log "$name: configure $dir"
  if ! setup "$dir" "${setup_args[@]}"; then
    failed=$((failed + 1))
    failures+=("$name: meson setup failed")
    return 0
  fi
  if [[ $what == all ]]; then
    log "$name: build"
    if ! ninja -C "$dir"; then
      failed=$((failed + 1))
      failures+=("$name: build failed")
      return 0
    fi
  else
    rebuild=()
  fi
  log "$name: test"
  # A stale log from an earlier run must not be counted.
  rm -f "$dir/meson-logs/testlog.json"
  env "${TEST_ENV[@]}" meson test -C "$dir" "${rebuild[@]}" --print-errorlogs \
    "$@" || true
  count "$dir" "$name" "$min"
}

log "dependencies"
if ! tools/deps.sh; then
  # Carry on: the builds below say what exactly is missing.
  failed=$((failed + 1))
  failures+=("deps: tools/deps.sh failed")
fi

stage build "$BUILD" 1 all --

# Engine only, under ASan + UBSan: leaks fail the run too, and the first UB
# report stops the test with a stack trace.  debugoptimized for usable
# traces.  GCC's -fsanitize=undefined leaves out float-cast-overflow
# (casting NaN or a too-large double to an integer), which hostile model
# files can reach, so it is asked for explicitly.
TEST_ENV=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)
stage asan "$ASAN" 1 all \
  -Db_sanitize=address,undefined -Dc_args=-fsanitize=float-cast-overflow \
  -Dplugin=disabled -Dbuildtype=debugoptimized \
  -- --suite engine

# The plugin under the same sanitizers, LSan included: the storm test
# (every element through 1000 state changes, seeks and property changes
# from another thread), which loads only the plugins it runs, so that a
# leak reported is ours (tests/elements/lsan.supp).  Only what that test
# needs is built.
stage asan-plugin "$ASAN_PLUGIN" 1 test-deps \
  -Db_sanitize=address,undefined -Dc_args=-fsanitize=float-cast-overflow \
  -Dplugin=enabled -Dbuildtype=debugoptimized \
  -- storm
TEST_ENV=()

# The fuzz dir only builds what the fuzz suite runs (its tests depend on
# their targets), so the rest of the tree is not compiled a third time.
CC=clang stage fuzz "$FUZZ" 1 test-deps \
  -Dfuzz=true -Dplugin=disabled -Dbuildtype=debugoptimized \
  -- --suite fuzz

log "summary ($(($(date +%s) - start)) s)"
for f in "${failures[@]+"${failures[@]}"}"; do
  echo "FAILED: $f"
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
