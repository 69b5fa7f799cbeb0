#!/bin/sh
# Upscale a PNG: pngdec ! diffusionsr ! pngenc.
#   pipelines/sr-image.sh IN.png OUT.png [SCALE]
set -eu
in=$1 out=$2 scale=${3:-2}
exec gst-launch-1.0 -q filesrc location="$in" ! pngdec ! videoconvert \
  ! diffusionsr scale="$scale" ! videoconvert ! pngenc ! filesink location="$out"
