#!/bin/sh
# Remove a station logo from a video with a Stable Diffusion inpainting pipeline folder and a
# prompt, re-encoded as VP8/WebM.
#   pipelines/inpaint-logo-prompt.sh PIPELINE-FOLDER IN MASK.(png|pgm) OUT.webm ["PROMPT"] [STEPS]
# PIPELINE-FOLDER: e.g. a download of runwayml/stable-diffusion-inpainting (9-channel U-Net) or
# any SD 1.x/2.x checkpoint.  The mask is static: once the scene is still, a frame whose pixels
# and mask are the last one's gets the last fill back without running the pipeline.  Frames
# larger than 1280x720 run in 512-pixel tiles; tiles without a masked pixel are not run.
set -eu
model=$1 in=$2 mask=$3 out=$4
prompt=${5:-"clean background, high quality"} steps=${6:-20}
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert \
  ! diffusioninpaint model-file="$model" mask-file="$mask" prompt="$prompt" \
      negative-prompt="text, logo, watermark" num-steps="$steps" scheduler=dpmpp-2m-karras \
  ! videoconvert ! vp8enc deadline=1 ! webmmux ! filesink location="$out"
