#!/usr/bin/env bash
# deps.sh: installs the Debian packages gst-generative needs, and only the
# ones that are missing, so that a second run is quick and needs no network.
#
# Extend PACKAGES when a new build or test dependency appears.
set -euo pipefail

PACKAGES=(
  # build
  build-essential meson ninja-build pkg-config
  # engine
  libopenblas-dev libglib2.0-dev libjson-glib-dev
  # plugin
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libpng-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  # gansynth-clean (formats, resampling)
  libsndfile1-dev libsamplerate0-dev
  # gdppay/gdpdepay: the latent files of the VAE recipes; webrtcdsp (bench)
  gstreamer1.0-plugins-bad
  # fuzzer and sanitizers (libclang_rt.fuzzer comes from libclang-rt-14-dev)
  clang libclang-rt-14-dev
  # memory checks
  valgrind
  # gst-generative-batch (Python 3 + PyGObject) and its tests on a
  # one-machine Slurm cluster (tools/slurm-local.sh; no accounting daemon)
  python3 python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  slurmctld slurmd slurm-client munge
  # the latent meta API's GObject introspection typelib (g-ir-scanner) and
  # the Python app of pipelines/ (Debian's GStreamer Python overrides)
  gobject-introspection libgirepository1.0-dev python3-gst-1.0
  # the Debian packages (debian/) and their checks
  debhelper dpkg-dev fakeroot lintian chrpath
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  # "install ok installed" is the only state in which the files are present;
  # removed-but-configured ("deinstall ok config-files") counts as missing.
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
