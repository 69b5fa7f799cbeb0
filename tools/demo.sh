#!/usr/bin/env bash
# demo.sh: the main job on a fresh machine.  Installs what is missing,
# builds, shows the plugin as GStreamer sees it from the build tree, and runs
# the engine demos.
#
# Environment: GE_BUILD_DIR renames the build dir (default: build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${GE_BUILD_DIR:-build}
FIXTURES=tests/fixtures

log() { printf '\n=== %s\n' "$*"; }

log "dependencies"
tools/deps.sh

log "build ($BUILD)"
if [[ -f "$BUILD/meson-private/coredata.dat" ]]; then
  meson setup --reconfigure "$BUILD"
else
  meson setup "$BUILD"
fi
ninja -C "$BUILD"

# The plugin straight from the build tree; the registry lives in the build
# dir so that the user's registry cache never points into it.
export GST_PLUGIN_PATH="$PWD/$BUILD/plugins"
export GST_REGISTRY_1_0="$PWD/$BUILD/gst-registry.bin"

log "plugin: gst-inspect-1.0 generative"
gst-inspect-1.0 generative

# Each demo: a title, then a command line whose first word is a program in
# the build dir.  A demo whose program is not built yet is reported and
# skipped, so the list can name what is planned.  Add element pipelines on
# the bundled samples here as they land.
demos=(
  "engine: 10-step DDIM loop of a small diffusers UNet, checked against diffusers"
  "tests/conformance/diffusers-conformance $FIXTURES/diffusers/ddim_loop_unet_ddpm_small"
)

status=0
for ((i = 0; i < ${#demos[@]}; i += 2)); do
  title=${demos[i]}
  read -r -a cmd <<<"${demos[i + 1]}"
  log "$title"
  prog="$BUILD/${cmd[0]}"
  if [[ ! -x "$prog" ]]; then
    echo "note: $prog is not built (not in this tree yet): skipping this demo"
    continue
  fi
  echo "\$ $prog ${cmd[*]:1}"
  if ! "$prog" "${cmd[@]:1}"; then
    echo "demo failed: $title"
    status=1
  fi
done

# Super-resolution, then inpainting, of the bundled samples with the default
# (trained) models, found in the source tree when the plugin is not installed.
export GST_GENERATIVE_MODEL_DIR="$PWD/models/sr"
OUT=${GE_DEMO_OUT:-demo-out}
mkdir -p "$OUT"
if [[ -f models/sr/diffusionsr-x2.safetensors ]]; then
  log "diffusionsr: samples/butterfly.png -> $OUT/butterfly-x2.png"
  pipelines/sr-image.sh samples/butterfly.png "$OUT/butterfly-x2.png" || status=1
  log "diffusionsr: samples/building.webm -> $OUT/building-x2.webm"
  pipelines/sr-video.sh samples/building.webm "$OUT/building-x2.webm" || status=1
  if [[ -f models/sr/diffusionsr-x4.safetensors ]]; then
    log "diffusionsr scale=4: samples/butterfly.png -> $OUT/butterfly-x4.png"
    pipelines/sr-image.sh samples/butterfly.png "$OUT/butterfly-x4.png" 4 || status=1
  fi
else
  echo "demo failed: the default model models/sr/diffusionsr-x2.safetensors is missing"
  status=1
fi

# Inpainting of the bundled samples with the default model.
if [[ -f models/inpaint/diffusioninpaint.safetensors ]]; then
  export GST_GENERATIVE_MODEL_DIR="$PWD/models/inpaint"
  log "diffusioninpaint: the logo of samples/building-logo.webm -> $OUT/building-nologo.webm"
  pipelines/inpaint-logo.sh samples/building-logo.webm samples/building-logo-mask.png \
    "$OUT/building-nologo.webm" || status=1
  log "diffusioninpaint: the antennae of samples/butterfly.png -> $OUT/butterfly-erased.png"
  pipelines/inpaint-image.sh samples/butterfly.png samples/butterfly-mask.png \
    "$OUT/butterfly-erased.png" || status=1
else
  echo "demo failed: the default model models/inpaint/diffusioninpaint.safetensors is missing"
  status=1
fi

# The VAE round trip: a clip to a latent file and back, and the attached
# latents read by an application.
if [[ -f models/vae/vae.safetensors ]]; then
  export GST_GENERATIVE_MODEL_DIR="$PWD/models/vae"
  log "vaeencode: samples/building.webm -> $OUT/building.latent"
  pipelines/vae-encode.sh samples/building.webm "$OUT/building.latent" || status=1
  log "vaedecode: $OUT/building.latent -> $OUT/building-vae.webm"
  pipelines/vae-decode.sh "$OUT/building.latent" "$OUT/building-vae.webm" || status=1
  log "latent-appsink: the latents attached to the first frames of samples/building.webm"
  "$BUILD/pipelines/latent-appsink" samples/building.webm 5 || status=1
else
  echo "demo failed: the default model models/vae/vae.safetensors is missing"
  status=1
fi

# Colorization of the clip made black and white.
if [[ -f models/img2img/diffusionimg2img.safetensors ]]; then
  export GST_GENERATIVE_MODEL_DIR="$PWD/models/img2img"
  log "diffusionimg2img: samples/building.webm in black and white -> $OUT/building-colorized.webm"
  pipelines/to-gray.sh samples/building.webm "$OUT/building-gray.webm" || status=1
  pipelines/colorize.sh "$OUT/building-gray.webm" "$OUT/building-colorized.webm" || status=1
else
  echo "demo failed: the default model models/img2img/diffusionimg2img.safetensors is missing"
  status=1
fi

# Speech cleanup of the bundled noisy recording, by the element and by the
# command-line tool.
if [[ -f models/gansynth/gansynth.safetensors ]]; then
  export GST_GENERATIVE_MODEL_DIR="$PWD/models/gansynth"
  log "gansynth: samples/noisy-speech.ogg -> $OUT/clean-speech.flac"
  pipelines/denoise-file.sh samples/noisy-speech.ogg "$OUT/clean-speech.flac" || status=1
  log "gansynth: samples/noisy-speech.ogg -> $OUT/speech-ab.wav (left original, right cleaned)"
  pipelines/denoise-ab.sh samples/noisy-speech.ogg "$OUT/speech-ab.wav" || status=1
  log "gansynth-clean: samples/noisy-speech.ogg -> $OUT/clean-speech.ogg"
  "$BUILD/tools/gansynth-clean" samples/noisy-speech.ogg "$OUT/clean-speech.ogg" || status=1
else
  echo "demo failed: the default model models/gansynth/gansynth.safetensors is missing"
  status=1
fi

ls -l "$OUT"

log "done"
exit "$status"
