#!/bin/sh
# Upscale a clip four times with a diffusers super-resolution pipeline folder, into VP8/WebM.
#   pipelines/sr-video-ldm.sh PIPELINE-FOLDER IN OUT.webm [STEPS] ["PROMPT"]
# PIPELINE-FOLDER: CompVis/ldm-super-resolution-4x-openimages (LDMSuperResolutionPipeline, no
# prompt) or stabilityai/stable-diffusion-x4-upscaler (StableDiffusionUpscalePipeline: the
# prompt and noise-level apply).  The frame is padded to the U-Net's multiple and cropped back;
# large frames run in overlapping tiles.
set -eu
model=$1 in=$2 out=$3 steps=${4:-50} prompt=${5:-""}
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert \
  ! diffusionsr model-file="$model" scale=4 num-steps="$steps" prompt="$prompt" \
  ! videoconvert ! vp8enc deadline=1 ! webmmux ! filesink location="$out"
