#!/bin/sh
# Erase what a mask image marks from a photo: pngdec ! diffusioninpaint ! pngenc.
#   pipelines/inpaint-image.sh IN.png MASK.(png|pgm) OUT.png
# The mask is white (above mask-threshold) where the photo is to be regenerated.
set -eu
in=$1 mask=$2 out=$3
exec gst-launch-1.0 -q filesrc location="$in" ! pngdec ! videoconvert \
  ! diffusioninpaint mask-file="$mask" ! videoconvert ! pngenc ! filesink location="$out"
