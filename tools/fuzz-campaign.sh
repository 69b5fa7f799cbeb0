#!/usr/bin/env bash
# fuzz-campaign.sh: a recorded fuzzing campaign of the libFuzzer targets.
#
#   tools/fuzz-campaign.sh [-t SECONDS] [-b BUILD_DIR] [TARGET ...]
#
# Runs each TARGET (default: all of them, one after the other) for SECONDS
# (default 600) on a working copy of its committed corpus fuzz/corpus-*/,
# then merges back into the committed corpus the inputs that add coverage
# (libFuzzer's -merge=1: the named seeds stay as they are, only new
# coverage is added; more than 300 new inputs are merged again on edge
# coverage alone), and appends one line per target to fuzz/CAMPAIGNS.md:
# date, target, seconds, executions, coverage (cov: edges, ft: features),
# findings, corpus size before and after.
#
# A finding (crash, timeout, leak, out-of-memory) does not end the
# campaign: libFuzzer is started again for the time left, and the inputs are
# kept in BUILD_DIR/fuzz/campaign-artifacts/TARGET/.  Each finding is a bug
# to fix, its input to commit as a regress-* seed of the target's corpus.
#
# BUILD_DIR (default build-fuzz) is a build configured as tools/test.sh's
# fuzz stage does: CC=clang meson setup build-fuzz -Dfuzz=true
# -Dplugin=disabled -Dbuildtype=debugoptimized.  The options match the
# short runs of the 'fuzz' test suite (fuzz/meson.build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=600
build=build-fuzz
# Most seeds a merge may add to a target's corpus (GE_FUZZ_CORPUS_MAX).
maxfiles=${GE_FUZZ_CORPUS_MAX:-300}
while getopts t:b: opt; do
  case $opt in
    t) seconds=$OPTARG ;;
    b) build=$OPTARG ;;
    *) sed -n '2,4p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

# target: executable, corpus dir, dictionary (as in fuzz/meson.build)
declare -A exe=(
  [safetensors]=fuzz-safetensors
  [config]=fuzz-config
  [clip-tokenizer-load]=fuzz-clip-tokenizer-load
  [clip-tokenizer-encode]=fuzz-clip-tokenizer-encode
  [mask]=fuzz-mask
  [latent]=fuzz-latent
)
declare -A corpus=(
  [safetensors]=corpus
  [config]=corpus-config
  [clip-tokenizer-load]=corpus-clip-load
  [clip-tokenizer-encode]=corpus-clip-encode
  [mask]=corpus-mask
  [latent]=corpus-latent
)
declare -A dict=(
  [safetensors]=safetensors.dict
  [config]=config.dict
  [clip-tokenizer-load]=clip-tokenizer.dict
  [clip-tokenizer-encode]=clip-tokenizer.dict
  [mask]=mask.dict
  [latent]=latent.dict
)
all=(safetensors config clip-tokenizer-load clip-tokenizer-encode mask latent)
(($# > 0)) || set -- "${all[@]}"
for t in "$@"; do
  [[ -n ${exe[$t]:-} ]] || { echo "fuzz-campaign: no target $t (${all[*]})" >&2; exit 2; }
  [[ -x $build/fuzz/${exe[$t]} ]] || { echo "fuzz-campaign: $build/fuzz/${exe[$t]} is not built" >&2; exit 2; }
done

record=fuzz/CAMPAIGNS.md
if [[ ! -f $record ]]; then
  cat > "$record" <<'EOF'
# Fuzzing campaigns

One line per target and campaign, appended by `tools/fuzz-campaign.sh`.
execs: inputs run; cov/ft: libFuzzer's covered edges and features at the
end; findings: crashes, timeouts, leaks and out-of-memory inputs found (each
fixed, its input kept as a `regress-*` seed); corpus: committed seeds
before -> after the merge.

| date | target | seconds | execs | cov | ft | findings | corpus |
|------|--------|---------|-------|-----|----|----------|--------|
EOF
fi

opts=(-timeout=10 -rss_limit_mb=2048 -max_len=4096 -report_slow_units=1000)

# The seeds that merges added (named by their SHA-1).
hashed() {
  find "$1" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}'
}

# The seeds an earlier merge added are taken out and merged again with this
# run's corpus, so that the committed corpus stays minimal instead of piling
# up campaign after campaign; the named seeds (valid-*, bad-*, regress-* ...)
# always stay.
merge() {
  hashed "$seeds" | xargs -r rm -f
  "$bin" -merge=1 "${opts[@]}" "$@" "$seeds" "$work" >> "$log" 2>&1 \
    || echo "    merge failed, see $log"
}

for t in "$@"; do
  bin=$build/fuzz/${exe[$t]}
  seeds=fuzz/${corpus[$t]}
  work=$build/fuzz/campaign-work/$t
  art=$build/fuzz/campaign-artifacts/$t
  log=$build/fuzz/campaign-$t.log
  rm -rf "$work" && mkdir -p "$work" "$art"
  cp "$seeds"/* "$work"/
  before=$(find "$seeds" -type f | wc -l)
  : > "$log"
  echo "=== $t: ${seconds}s, log $log"

  start=$(date +%s)
  execs=0 findings=0 cov=? ft=?
  while :; do
    left=$((seconds - ($(date +%s) - start)))
    ((left >= 5)) || break
    rc=0
    "$bin" -max_total_time="$left" -print_final_stats=1 "${opts[@]}" \
      -dict="fuzz/${dict[$t]}" -artifact_prefix="$art/" "$work" \
      > "$log.run" 2>&1 || rc=$?
    cat "$log.run" >> "$log"
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log.run" | tail -n1)
    execs=$((execs + ${n:-0}))
    line=$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log.run" | tail -n1 || true)
    if [[ -n $line ]]; then
      cov=$(sed -E 's/.*cov: ([0-9]+).*/\1/' <<< "$line")
      ft=$(sed -E 's/.*ft: ([0-9]+).*/\1/' <<< "$line")
    fi
    ((rc != 0)) || break
    findings=$((findings + 1))
    echo "    finding $findings (exit $rc):" \
      "$(grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix)' "$log.run" | head -n3 | tr '\n' ' ')"
    # A target that cannot start (or crashes at once each time) must not
    # spin for the whole campaign.
    ((findings < 20)) || break
  done
  rm -f "$log.run"
  secs=$(($(date +%s) - start))

  merge
  # Hit counts make many more features than edges (a prompt per count of
  # BPE merges ...): past the cap, the merge keeps what covers new edges.
  added=$(hashed "$seeds" | wc -l)
  if ((added > maxfiles)); then
    echo "    $added inputs merged: again on edges alone (-use_counters=0)"
    merge -use_counters=0
  fi
  after=$(find "$seeds" -type f | wc -l)
  echo "| $(date -u +%Y-%m-%d) | $t | $secs | $execs | $cov | $ft | $findings | $before -> $after |" \
    | tee -a "$record"
done
