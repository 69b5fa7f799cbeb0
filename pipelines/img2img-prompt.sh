#!/bin/sh
# Image-to-image with a prompt (SDEdit) through a Stable Diffusion pipeline folder.
#   pipelines/img2img-prompt.sh PIPELINE-FOLDER IN.png OUT.png "PROMPT" [STRENGTH] [STEPS]
# PIPELINE-FOLDER: any SD 1.x/2.x checkpoint (StableDiffusionPipeline or
# StableDiffusionImg2ImgPipeline), or timbrooks/instruct-pix2pix, whose prompt is an
# instruction ("make it winter") and which also takes image-guidance-scale.  STRENGTH (0-1,
# default 0.6) is how far the picture is noised: of STEPS the last STRENGTH * STEPS run, as
# diffusers picks them.
set -eu
model=$1 in=$2 out=$3 prompt=$4 strength=${5:-0.6} steps=${6:-30}
exec gst-launch-1.0 -q filesrc location="$in" ! pngdec ! videoconvert \
  ! diffusionimg2img model-file="$model" prompt="$prompt" strength="$strength" \
      num-steps="$steps" \
  ! videoconvert ! pngenc ! filesink location="$out"
