#!/usr/bin/env bash
# Installs the build into a scratch prefix, runs the installed `tandem` from
# there and again after moving the whole tree (it finds libtandem through a
# relative rpath, with no LD_LIBRARY_PATH), and builds the README example as
# a user would: cc example.c $(pkg-config --cflags --libs tandem).
#   test_install.sh BUILD_DIR EXAMPLE_C
set -euo pipefail
build=$1 example=$2
dest=$(mktemp -d /tmp/td_install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
unset LD_LIBRARY_PATH
meson install -C "$build" --no-rebuild --destdir "$dest/stage" >/dev/null
tandem=$(find "$dest/stage" -path '*/bin/tandem')
prefix=${tandem%/bin/tandem}
echo "installed: $tandem"
passed=0
run_installed() { # run_installed TANDEM WHERE
    local lib
    lib=$(ldd "$1" | awk '/libtandem/ { print $3 }')
    case $lib in
    "$dest"/*) ;;
    *) echo "FAIL: $2: libtandem resolves to '$lib', not the installed copy"; exit 1 ;;
    esac
    "$1" train --help | grep -q "^usage: tandem train" || { echo "FAIL: $2: train --help"; exit 1; }
    "$1" check --batch 16 --threads 1 | grep -q "derivatives agree" ||
        { echo "FAIL: $2: tandem check"; exit 1; }
    echo "ok: the installed tandem runs $2 (libtandem from $lib)"
    passed=$((passed + 1))
}
run_installed "$tandem" "from its prefix"
mkdir -p "$dest/moved"
mv "$prefix" "$dest/moved/tree"
run_installed "$dest/moved/tree/bin/tandem" "after the tree was moved"
mv "$dest/moved/tree" "$prefix"

pc=$(dirname "$(find "$dest/stage" -name tandem.pc | head -n 1)")
export PKG_CONFIG_SYSROOT_DIR=$dest/stage PKG_CONFIG_PATH=$pc
flags=$(pkg-config --cflags --libs tandem)
echo "pkg-config --cflags --libs tandem: $flags"
# A library built with sanitizers (tools/sanitize.sh) needs them in the program too.
san=()
ldd "$(pkg-config --variable=libdir tandem)/libtandem.so" | grep -q libasan &&
    san=(-fsanitize=address,undefined)
cc -std=c11 -Wall -Wextra "${san[@]}" "$example" $flags -o "$dest/example"
# With a sysroot, pkg-config already prefixes the variable with $dest/stage.
libdir=$(pkg-config --variable=libdir tandem)
out=$(LD_LIBRARY_PATH="$libdir" "$dest/example")
echo "$out"
grep -q "^loss " <<<"$out"
echo "$((passed + 1)) passed, 0 failed"
