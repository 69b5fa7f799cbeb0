#!/bin/sh
# Clean the speech of a recording (podcast cleanup) into FLAC, Ogg Vorbis or WAV by OUT's name.
#   pipelines/denoise-file.sh IN OUT.{flac,ogg,wav} [gansynth properties ...]
# Any rate and channel count: audioresample takes the audio to the nearest rate the model runs
# at (48 kHz for podcasts) and the file is written at that rate; each channel is cleaned alone.
# progressreport prints the position every 5 s (and at the end) on stdout.
set -eu
in=$1 out=$2
shift 2
case "$out" in
  *.flac) enc="flacenc" ;;
  *.ogg) enc="vorbisenc ! oggmux" ;;
  *.wav) enc="wavenc" ;;
  *) echo "denoise-file.sh: OUT must end in .flac, .ogg or .wav" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
exec gst-launch-1.0 -q filesrc location="$in" ! decodebin ! audioconvert ! audioresample \
  ! gansynth "$@" ! progressreport ! audioconvert ! $enc ! filesink location="$out"
