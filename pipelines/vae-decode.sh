#!/bin/sh
# Decode the latents of pipelines/vae-encode.sh back into a VP8/WebM video of the original size.
#   pipelines/vae-decode.sh IN.latent OUT.webm
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
in=$1 out=$2
exec gst-launch-1.0 -q filesrc location="$in" ! gdpdepay ! vaedecode ! progressreport ! videoconvert \
  ! vp8enc deadline=1 ! webmmux ! filesink location="$out"
