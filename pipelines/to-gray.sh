#!/bin/sh
# Turn a clip black and white (VP8/WebM), e.g. to try pipelines/colorize.sh on it.
#   pipelines/to-gray.sh IN OUT.webm
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
exec gst-launch-1.0 -q filesrc location="$1" ! decodebin ! videoconvert ! videobalance saturation=0 ! progressreport \
  ! videoconvert ! vp8enc deadline=1 ! webmmux ! filesink location="$2"
