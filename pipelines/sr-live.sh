#!/bin/sh
# Live upscaling of a test source to the screen.  The sink synchronises on
# the clock, so frames that arrive late are dropped by diffusionsr's QoS and
# num-steps falls to 1 under sustained lateness (see its "stats").
#   pipelines/sr-live.sh [SCALE]
set -eu
scale=${1:-2}
exec gst-launch-1.0 videotestsrc is-live=true pattern=ball \
  ! video/x-raw,width=160,height=120,framerate=10/1 ! videoconvert \
  ! diffusionsr scale="$scale" num-steps=2 ! videoconvert ! autovideosink
