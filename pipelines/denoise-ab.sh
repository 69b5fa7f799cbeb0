#!/bin/sh
# An A/B file for listening: the original in the left channel, the cleaned speech in the right,
# sample-aligned (gansynth's output keeps the input's timestamps).
#   pipelines/denoise-ab.sh IN OUT.wav [gansynth properties ...]
# (WAV: interleave leaves the two channels unpositioned, which flacenc refuses.)
set -eu
in=$1 out=$2
shift 2
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! audioconvert ! audioresample \
  ! audio/x-raw,format=F32LE,channels=1,rate=48000 ! tee name=t \
  t. ! queue ! interleave name=ab ! audioconvert ! wavenc ! filesink location="$out" \
  t. ! queue ! gansynth "$@" ! ab.
