#!/bin/sh
# Colorize a black and white clip (or any clip: its colours are replaced) into VP8/WebM.
#   pipelines/colorize.sh IN OUT.webm [diffusionimg2img properties ...]
# The installed model keeps each frame's luma and draws its chroma; the same noise every frame
# keeps the colours of a still scene steady.
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
in=$1 out=$2
shift 2
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert \
  ! diffusionimg2img "$@" ! progressreport ! videoconvert ! vp8enc deadline=1 ! webmmux ! filesink location="$out"
