#!/usr/bin/env bash
# valgrind.sh: the engine tests under valgrind memcheck (slow: ~25 minutes
# on 2 cores, so not part of tools/test.sh, which runs them under
# ASan/UBSan instead).  Fails on any memcheck error or definite leak.
#
#   tools/valgrind.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build}
tools/deps.sh >/dev/null
[[ -d $build ]] || meson setup "$build"
ninja -C "$build"
export G_TEST_SRCDIR=$PWD/tests/engine
status=0
for src in tests/engine/test-*.c; do   # every engine test meson builds
  t=$(basename "$src" .c)
  echo "=== $t"
  valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
    "$build/tests/engine/$t" || status=1
done
for c in tests/fixtures/diffusers/*/; do
  echo "=== diffusers-conformance $c"
  valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
    "$build/tests/conformance/diffusers-conformance" "$c" | tail -1 || status=1
done
exit $status
