#!/bin/sh
# Encode a video into VAE latents, stored with their caps and timestamps (GDP).
#   pipelines/vae-encode.sh IN OUT.latent [vaeencode properties ...]
# The file holds, per frame, C x ceil(H/f) x ceil(W/f) float32 (f = 8, C = 4 for the
# installed model): 1/48 of the RGB frame's values.  pipelines/vae-decode.sh plays it back.
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
in=$1 out=$2
shift 2
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert \
  ! vaeencode "$@" ! progressreport ! gdppay ! filesink location="$out"
