#!/bin/sh
# Clean a live microphone into the speakers with low latency (voice calls, monitoring).
#   pipelines/denoise-live.sh [RATE] [gansynth properties ...]
# RATE 16000 (voice, default) or 48000.  gansynth adds 40 ms (a 20 ms frame and 20 ms of
# lookahead); the source's buffers are kept at 10 ms so the whole chain stays near 60 ms plus
# the sound server's own.
# GE_LIVE_SRC replaces the microphone (e.g. "audiotestsrc is-live=true wave=pink-noise").
set -eu
rate=${1:-16000}
[ $# -gt 0 ] && shift
src=${GE_LIVE_SRC:-autoaudiosrc}
# shellcheck disable=SC2086
exec gst-launch-1.0 $src ! audio/x-raw,channels=1 ! audioconvert ! audioresample \
  ! audio/x-raw,rate="$rate" ! gansynth "$@" ! audioconvert ! audioresample \
  ! autoaudiosink sync=true
