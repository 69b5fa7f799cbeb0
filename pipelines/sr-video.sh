#!/bin/sh
# Upscale a video file to a playable WebM (VP8 from gst-plugins-good).
#   pipelines/sr-video.sh IN OUT.webm [SCALE]
# Audio, if any, is dropped; add a second branch through vorbisenc to keep it.
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
in=$1 out=$2 scale=${3:-2}
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert \
  ! diffusionsr scale="$scale" ! progressreport ! videoconvert \
  ! vp8enc deadline=1 target-bitrate=2000000 ! webmmux ! filesink location="$out"
