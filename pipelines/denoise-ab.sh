#!/bin/sh
# An A/B file for listening: the original in the left channel, the cleaned speech in the right,
# sample-aligned (gansynth's output keeps the input's timestamps).
#   pipelines/denoise-ab.sh IN OUT.wav [gansynth properties ...]
# (WAV: interleave leaves the two channels unpositioned, which flacenc refuses.)
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
in=$1 out=$2
shift 2
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! audioconvert ! audioresample \
  ! audio/x-raw,format=F32LE,channels=1,rate=48000 ! progressreport ! tee name=t \
  t. ! queue ! interleave name=ab ! audioconvert ! wavenc ! filesink location="$out" \
  t. ! queue ! gansynth "$@" ! ab.
