#!/bin/sh
# Remove a station logo from a video with a static mask, re-encoded as VP8/WebM.
#   pipelines/inpaint-logo.sh IN MASK.(png|pgm) OUT.webm
# MASK has the video's size (or its aspect ratio: it is scaled); the same noise every frame
# keeps the fill steady while the picture around it is still.
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
in=$1 mask=$2 out=$3
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert \
  ! diffusioninpaint mask-file="$mask" ! progressreport ! videoconvert ! vp8enc deadline=1 \
  ! webmmux ! filesink location="$out"
