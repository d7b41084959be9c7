#!/usr/bin/env bash
# Installs the build into a scratch prefix and builds the README example as a
# user would: cc example.c $(pkg-config --cflags --libs tandem).
#   test_install.sh BUILD_DIR EXAMPLE_C
set -euo pipefail
build=$1 example=$2
dest=$(mktemp -d /tmp/td_install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --no-rebuild --destdir "$dest" >/dev/null
pc=$(dirname "$(find "$dest" -name tandem.pc | head -n 1)")
export PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$pc
flags=$(pkg-config --cflags --libs tandem)
echo "pkg-config --cflags --libs tandem: $flags"
cc -std=c11 -Wall -Wextra "$example" $flags -o "$dest/example"
# With a sysroot, pkg-config already prefixes the variable with $dest.
libdir=$(pkg-config --variable=libdir tandem)
out=$(LD_LIBRARY_PATH="$libdir" "$dest/example")
echo "$out"
grep -q "^loss " <<<"$out"
echo "1 passed, 0 failed"
