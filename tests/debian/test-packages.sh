#!/usr/bin/env bash
# test-packages.sh: builds the Debian packages from a copy of the source
# tree and checks them (suite "debian").
#
#   test-packages.sh SOURCE WORK
#
#  1. copies the source tree into WORK/src: the tracked files and the new
#     ones git does not ignore (no build dir, nothing built is reused);
#  2. dpkg-buildpackage -us -uc -b with DEB_BUILD_OPTIONS="nocheck
#     parallel=2" (the suites themselves run in tools/test.sh), under a
#     time limit;
#  3. checks each package's file list: what must be there, and nothing
#     outside what the package is for;
#  4. lintian: no errors;
#  5. unpacks the packages into WORK/root and runs them from there, as an
#     installed system would (the plugin, its default models from the
#     packaged folder, the tools, the typelib from Python).
#
# GE_DEB_TIMEOUT: seconds for dpkg-buildpackage (default 1500).
set -euo pipefail

SRC=$(cd "$1" && pwd)
WORK=$2
TIMEOUT=${GE_DEB_TIMEOUT:-1500}
PY=/usr/bin/python3

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

for tool in dpkg-buildpackage dpkg-deb lintian chrpath dh; do
  command -v "$tool" >/dev/null || fail "$tool is missing (tools/deps.sh installs it)"
done

rm -rf "$WORK"
mkdir -p "$WORK/src"

echo "== copying the source tree into $WORK/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # tracked and untracked-but-not-ignored files that exist
  (cd "$SRC" && git ls-files -z --cached --others --exclude-standard) \
    | (cd "$SRC" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
    | (cd "$SRC" && tar --null -T - -cf -) | tar -C "$WORK/src" -xf -
else
  tar -C "$SRC" --exclude='./build*' --exclude=./.git --exclude=./_work \
    --exclude=./demo-out -cf - . | tar -C "$WORK/src" -xf -
fi
[[ -f "$WORK/src/debian/control" ]] || fail "no debian/ in the copy"

echo "== dpkg-buildpackage -us -uc -b (limit ${TIMEOUT} s)"
start=$(date +%s)
if ! (cd "$WORK/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" \
      timeout "$TIMEOUT" dpkg-buildpackage -us -uc -b >"$WORK/build.log" 2>&1); then
  tail -n 60 "$WORK/build.log"
  fail "dpkg-buildpackage failed (log: $WORK/build.log)"
fi
echo "built in $(($(date +%s) - start)) s"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
version=$(cd "$WORK/src" && dpkg-parsechangelog -SVersion)
deb() { echo "$WORK/${1}_${version}_${arch}.deb"; }

# package | files that must be in it (patterns) ; every file of the package
# must match one of its patterns.
declare -A MUST ALLOWED
L=usr/lib/$triplet
MUST[gstreamer1.0-generative]="
  usr/lib/$triplet/gstreamer-1.0/libgstgenerative.so
  usr/share/gst-generative/models/diffusionsr-x2.safetensors
  usr/share/gst-generative/models/diffusionsr-x4.safetensors
  usr/share/gst-generative/models/diffusioninpaint.safetensors
  usr/share/gst-generative/models/vae.safetensors
  usr/share/gst-generative/models/diffusionimg2img.safetensors
  usr/share/gst-generative/models/gansynth.safetensors
  usr/bin/gansynth-clean
  usr/bin/gst-generative-batch"
ALLOWED[gstreamer1.0-generative]="$L/gstreamer-1.0/*.so usr/share/gst-generative/models/*.safetensors usr/bin/* usr/share/doc/*"
MUST[libgenerative-engine0]="$L/libgenerative-engine.so.0 $L/libgenerative-engine.so.0.*"
ALLOWED[libgenerative-engine0]="$L/libgenerative-engine.so.0* usr/share/doc/*"
MUST[libgenerative-engine-dev]="
  usr/include/generative-engine/ge-error.h
  usr/include/generative-engine/ge-model-file.h
  usr/include/generative-engine/ge-unet2d.h
  usr/include/generative-engine/ge-vae.h
  usr/include/generative-engine/ge-sr.h
  usr/include/generative-engine/ge-speech.h
  $L/libgenerative-engine.so
  $L/pkgconfig/generative-engine.pc"
ALLOWED[libgenerative-engine-dev]="usr/include/generative-engine/*.h $L/libgenerative-engine.so $L/pkgconfig/generative-engine.pc usr/share/doc/*"
MUST[libgstgenerative-1.0-0]="$L/libgstgenerative-1.0.so.0 $L/libgstgenerative-1.0.so.0.*"
ALLOWED[libgstgenerative-1.0-0]="$L/libgstgenerative-1.0.so.0* usr/share/doc/*"
MUST[libgstgenerative-1.0-dev]="
  usr/include/gst-generative/gstlatentmeta.h
  usr/include/gst-generative/gstgenerativelatent.h
  $L/libgstgenerative-1.0.so
  $L/pkgconfig/gstgenerative-1.0.pc
  usr/share/gir-1.0/GstGenerative-1.0.gir"
ALLOWED[libgstgenerative-1.0-dev]="usr/include/gst-generative/*.h $L/libgstgenerative-1.0.so $L/pkgconfig/gstgenerative-1.0.pc usr/share/gir-1.0/*.gir usr/share/doc/*"
MUST[gir1.2-gstgenerative-1.0]="$L/girepository-1.0/GstGenerative-1.0.typelib"
ALLOWED[gir1.2-gstgenerative-1.0]="$L/girepository-1.0/GstGenerative-1.0.typelib usr/share/doc/*"

echo "== file lists"
shopt -s extglob
for pkg in "${!MUST[@]}"; do
  f=$(deb "$pkg")
  [[ -f "$f" ]] || fail "package $pkg was not built ($(basename "$f") missing)"
  # regular files and links, without the leading "./"
  mapfile -t files < <(dpkg-deb --fsys-tarfile "$f" | tar -t | sed 's|^\./||' | grep -v -e '/$' -e '^$')
  for want in ${MUST[$pkg]}; do
    found=0
    for have in "${files[@]}"; do
      # shellcheck disable=SC2053
      [[ $have == $want ]] && found=1 && break
    done
    [[ $found == 1 ]] || fail "$pkg: no $want"
  done
  for have in "${files[@]}"; do
    ok=0
    for pat in ${ALLOWED[$pkg]}; do
      # shellcheck disable=SC2053
      [[ $have == $pat ]] && ok=1 && break
    done
    [[ $ok == 1 ]] || fail "$pkg: $have does not belong there"
  done
  echo "$pkg: ${#files[@]} files, as expected"
done
# (and the automatic -dbgsym packages of the ones with binaries)
extra=$(cd "$WORK" && ls ./*.deb | grep -v -e '-dbgsym_' \
  | grep -v -F -f <(for p in "${!MUST[@]}"; do echo "/${p}_"; done) || true)
[[ -z "$extra" ]] || fail "unexpected packages: $extra"

# The dependencies the shared libraries and the typelib bring.
depends=$(dpkg-deb -f "$(deb gstreamer1.0-generative)" Depends)
for need in libgenerative-engine0 libgstgenerative-1.0-0 python3-gi; do
  [[ $depends == *"$need"* ]] || fail "gstreamer1.0-generative does not depend on $need: $depends"
done
depends=$(dpkg-deb -f "$(deb gir1.2-gstgenerative-1.0)" Depends)
[[ $depends == *gir1.2-gstreamer-1.0* && $depends == *libgstgenerative-1.0-0* ]] \
  || fail "gir1.2-gstgenerative-1.0 Depends: $depends"

echo "== lintian"
changes=$(ls "$WORK"/gst-generative_"${version}"_"$arch".changes)
if ! lintian --fail-on error --suppress-tags-from-file /dev/null "$changes" >"$WORK/lintian.log" 2>&1; then
  cat "$WORK/lintian.log"
  fail "lintian reports errors"
fi
echo "lintian: $(grep -c '^W:' "$WORK/lintian.log" || true) warnings, no errors"

echo "== the packages unpacked into $WORK/root"
ROOT=$WORK/root
for pkg in "${!MUST[@]}"; do
  dpkg-deb -x "$(deb "$pkg")" "$ROOT"
done
# What an installed system finds by itself, pointed into the unpacked root:
# the plugin folder, the libraries, the typelib, the models' installed
# folder (GST_GENERATIVE_MODEL_DIR replaces the one compiled in, /usr/share).
export GST_PLUGIN_SYSTEM_PATH_1_0="$ROOT/$L/gstreamer-1.0:/$L/gstreamer-1.0"
unset GST_PLUGIN_PATH GST_GENERATIVE_MODEL_PATH
export GST_REGISTRY_1_0="$WORK/registry.bin"
export LD_LIBRARY_PATH="$ROOT/$L"
export GI_TYPELIB_PATH="$ROOT/$L/girepository-1.0"
export GST_GENERATIVE_MODEL_DIR="$ROOT/usr/share/gst-generative/models"
export PATH="$ROOT/usr/bin:$PATH"

readelf -d "$ROOT/$L/gstreamer-1.0/libgstgenerative.so" | grep -q 'R.*PATH' \
  && fail "the plugin keeps a RUNPATH"
grep -q "/usr/share/gst-generative/models" "$ROOT/$L/gstreamer-1.0/libgstgenerative.so" \
  || fail "the plugin does not look for its models in /usr/share/gst-generative/models"

inspect=$(gst-inspect-1.0 generative)
for e in diffusionsr diffusioninpaint vaeencode vaedecode diffusionimg2img gansynth; do
  grep -q "^  $e:" <<<"$inspect" || fail "gst-inspect-1.0 generative does not list $e"
done
echo "gst-inspect-1.0 generative lists the six elements"

cd "$WORK"
gst-launch-1.0 -q filesrc location="$SRC/samples/butterfly.png" ! pngdec ! videoconvert \
  ! diffusionsr ! videoconvert ! pngenc ! filesink location=x2.png
[[ -s x2.png ]] || fail "diffusionsr wrote nothing"
gst-launch-1.0 -q filesrc location="$SRC/samples/building.webm" ! decodebin ! videoconvert \
  ! vaeencode ! vaedecode ! videoconvert ! fakesink
gansynth-clean -q "$SRC/samples/noisy-speech.ogg" clean.ogg
[[ -s clean.ogg ]] || fail "gansynth-clean wrote nothing"
"$PY" "$SRC/pipelines/generative-app.py" -q latents "$SRC/samples/building.webm" --frames 1 \
  | tee app.log
grep -q "24 frames, each with its latent" app.log || fail "the typelib: no latents read"
echo "installed: the elements, the default models, gansynth-clean and the typelib work"
echo "PASS"
