#!/bin/sh
# Inpaint a video with the mask coming from a second stream (a grey video of the same
# size, e.g. a segmentation model's output), on diffusioninpaint's request pad "mask".
#   pipelines/inpaint-mask-stream.sh IN MASK-VIDEO OUT.webm
# Frames before the first mask pass through unchanged (one warning); a mask stream that
# pauses or ends keeps its last mask.
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
in=$1 mask=$2 out=$3
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert \
  ! diffusioninpaint name=ip ! progressreport ! videoconvert ! vp8enc deadline=1 ! webmmux \
  ! filesink location="$out" \
  filesrc location="$mask" ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 ! ip.mask
