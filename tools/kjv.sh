#!/usr/bin/env bash
# Writes the King James Bible as plain text to OUT, the corpus of the
# character-level GPT (io/text.h):  tools/kjv.sh OUT
#
# The text comes from Debian's bible-kjv, `bible -l100000 'Gen1:1-Rev22:21'`:
# every book, chapter and verse in order, 4,298,239 bytes of ASCII in 34,669
# lines (sha256 6f74f5589333c56c263963e6347dba662bae2d96861302e690aaae0b4a855eda
# with bible-kjv 4.38). Each of the 1,189 chapters opens with a blank line, a
# heading line "<Book> <chapter>" and another blank line; each of the 31,102
# verses is one line "  <verse number> <text>" (two spaces, the number, a
# space: no book or chapter on verse lines). -l100000 keeps every verse on one
# line (the longest is 532 characters). It begins:
#
#   (blank line)
#   Genesis 1
#   (blank line)
#     1 In the beginning God created the heaven and the earth.
#     2 And the earth was without form, and void; and darkness was upon the ...
#
# and ends with "  21 The grace of our Lord Jesus Christ be with you all. Amen.".
# Its byte vocabulary has 73 symbols: newline, space, ! ' ( ) , - . 0-9 : ; ?
# A-Z without X, a-z.
#
# Does nothing when OUT exists and is not empty. Installs bible-kjv with
# apt-get when `bible` is missing (needs root and Debian's repository then).
# OUT is written whole or not at all (through OUT.tmp and a rename).
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUT" >&2
    exit 2
fi
out=$1
if [ -s "$out" ]; then
    echo "kjv.sh: $out exists; leaving it"
    exit 0
fi
if ! command -v bible >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "kjv.sh: 'bible' is not installed; run as root, or: apt-get install bible-kjv" >&2
        exit 1
    fi
    echo "kjv.sh: installing bible-kjv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends bible-kjv ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends bible-kjv; }
fi
tmp=$out.tmp
trap 'rm -f "$tmp"' EXIT
# bible reads bible.data from the current directory before /usr/lib: run it
# from / so that a stray file cannot replace the text.
(cd / && bible -l100000 'Gen1:1-Rev22:21') >"$tmp"
if ! tail -n 1 "$tmp" | grep -q 'Amen\.$'; then
    echo "kjv.sh: bible's output does not end with Revelation 22:21; not writing $out" >&2
    exit 1
fi
mv "$tmp" "$out"
trap - EXIT
echo "kjv.sh: wrote $out ($(wc -c <"$out") bytes)"
