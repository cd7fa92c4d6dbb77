#!/usr/bin/env bash
#
# cli.sh - tests of the cellar command-line tool (tools/cellar.c).
#
#   bash tests/cli.sh path/to/cellar
#
# Runs the tool on stores in a temporary directory and checks its exact
# output and exit status.  Prints "ok N - description" per check and stops
# with "not ok N - description: problem" (and the command's output) at the
# first failure, exiting 1.
set -euo pipefail
shopt -s nullglob

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
	echo "usage: $0 path/to/cellar" >&2
	exit 2
fi
cellar=$1
case $cellar in
/*) ;;
*) cellar=$PWD/$cellar ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/stdout  # stdout of the last command run by expect_status
err=$tmp/stderr  # its stderr

n=0           # checks passed so far
desc=""       # the check under way

# begin DESCRIPTION: start a check.
begin() {
	desc=$1
}

# ok: the check under way passed.
ok() {
	n=$((n + 1))
	echo "ok $n - $desc"
}

# fail MESSAGE [EXPECTED]: the check under way failed; show the expected
# stdout (file EXPECTED, if given) and the last command's output.
fail() {
	echo "not ok $((n + 1)) - $desc: $1"
	if [ $# -ge 2 ]; then
		echo "# expected stdout:"
		od -c "$2" | sed 's/^/#   /'
	fi
	if [ -s "$out" ]; then
		echo "# stdout of the last command:"
		od -c "$out" | sed 's/^/#   /'
	fi
	if [ -s "$err" ]; then
		echo "# stderr of the last command:"
		sed 's/^/#   /' "$err"
	fi
	exit 1
}

# expect_status N CMD [ARGS...]: run CMD, its stdout to $out and stderr to
# $err (stdin is kept, for load); fail unless it exits with status N.
expect_status() {
	local want=$1 st=0
	shift
	"$@" >"$out" 2>"$err" || st=$?
	if [ "$st" -ne "$want" ]; then
		fail "'$*' exited with status $st, expected $want"
	fi
}

# expect_stdout TEXT: the last command's stdout is exactly TEXT, byte for
# byte (write newlines into TEXT, e.g. with $'...\n').
expect_stdout() {
	printf '%s' "$1" >"$tmp/expected"
	if ! cmp -s "$tmp/expected" "$out"; then
		fail "stdout differs from what was expected" "$tmp/expected"
	fi
}

# expect_stdout_file FILE: the last command's stdout is exactly FILE.
expect_stdout_file() {
	if ! cmp -s "$1" "$out"; then
		fail "stdout differs from what was expected" "$1"
	fi
}

# expect_stderr_prefix TEXT: the last command's stderr starts with TEXT.
expect_stderr_prefix() {
	local got
	got=$(head -c "${#1}" "$err")
	if [ "$got" != "$1" ]; then
		fail "stderr does not start with '$1'"
	fi
}

# expect_stderr_empty: the last command wrote nothing to stderr.
expect_stderr_empty() {
	if [ -s "$err" ]; then
		fail "unexpected output on stderr"
	fi
}

# --------------------------------------------------------------- create

db=$tmp/db

begin "create makes a new store, silently"
expect_status 0 "$cellar" create "$db"
expect_stdout ""
expect_stderr_empty
[ -d "$db" ] || fail "$db was not created"
ok

begin "create on an existing store keeps its data"
expect_status 0 "$cellar" put "$db" keep me
expect_status 0 "$cellar" create "$db"
expect_stdout ""
expect_status 0 "$cellar" get "$db" keep
expect_stdout "me"
ok

begin "put on a missing store exits 1 and creates nothing"
expect_status 1 "$cellar" put "$tmp/missing" k v
expect_stderr_prefix "cellar: put: "
[ ! -e "$tmp/missing" ] || fail "put created $tmp/missing"
ok

# ------------------------------------------------------------- put/get

begin "put then get returns the value raw, without a newline"
expect_status 0 "$cellar" put "$db" apple red
expect_stdout ""
expect_stderr_empty
expect_status 0 "$cellar" get "$db" apple
expect_stdout "red"
expect_stderr_empty
ok

begin "put/get of a key and a value with spaces"
expect_status 0 "$cellar" put "$db" "a key" "a value with  spaces "
expect_status 0 "$cellar" get "$db" "a key"
expect_stdout "a value with  spaces "
ok

begin "put/get of an empty value"
expect_status 0 "$cellar" put "$db" empty ""
expect_status 0 "$cellar" get "$db" empty
expect_stdout ""
expect_stderr_empty
ok

begin "put replaces the old value"
expect_status 0 "$cellar" put "$db" apple green
expect_status 0 "$cellar" get "$db" apple
expect_stdout "green"
ok

begin "get of an absent key exits 1"
expect_status 1 "$cellar" get "$db" absent
expect_stdout ""
expect_stderr_prefix "cellar: get: "
ok

begin "del then get exits 1"
expect_status 0 "$cellar" del "$db" apple
expect_stdout ""
expect_stderr_empty
expect_status 1 "$cellar" get "$db" apple
expect_stdout ""
ok

begin "del of an absent key exits 1"
expect_status 1 "$cellar" del "$db" absent
expect_stdout ""
expect_stderr_prefix "cellar: del: "
expect_status 1 "$cellar" del "$db" apple
ok

begin "put of an empty key exits 1"
expect_status 1 "$cellar" put "$db" "" v
expect_stderr_prefix "cellar: put: "
ok

# ---------------------------------------------------------------- count

cdb=$tmp/count
begin "count after several puts and dels"
expect_status 0 "$cellar" create "$cdb"
expect_status 0 "$cellar" count "$cdb"
expect_stdout $'0\n'
for k in a b c d e; do
	expect_status 0 "$cellar" put "$cdb" "$k" "v$k"
done
expect_status 0 "$cellar" put "$cdb" a again  # an overwrite: no new key
expect_status 0 "$cellar" del "$cdb" b
expect_status 0 "$cellar" del "$cdb" d
expect_status 1 "$cellar" del "$cdb" d
expect_status 0 "$cellar" count "$cdb"
expect_stdout $'3\n'
expect_stderr_empty
ok

# ------------------------------------------------------------------- -x

begin "-x decodes \\xHH in KEY and VALUE (TAB key, NUL in value)"
expect_status 0 "$cellar" -x put "$db" 'a\x09b' 'v\x00w'
expect_status 0 "$cellar" -x get "$db" 'a\x09b'
printf 'v\000w' >"$tmp/want"
expect_stdout_file "$tmp/want"
# The same key written with a real TAB, without -x.
expect_status 0 "$cellar" get "$db" $'a\tb'
expect_stdout_file "$tmp/want"
ok

begin "-x with a NUL byte in the key"
expect_status 0 "$cellar" --escaped put "$db" 'n\x00ul' 'x\xffy'
expect_status 0 "$cellar" -x get "$db" 'n\x00ul'
printf 'x\377y' >"$tmp/want"
expect_stdout_file "$tmp/want"
# The key is all four bytes, not cut at the NUL; without -x the escape
# is not decoded.
expect_status 1 "$cellar" -x get "$db" 'n'
expect_status 1 "$cellar" get "$db" 'n\x00ul'
ok

begin "without -x, KEY and VALUE are taken literally"
expect_status 0 "$cellar" put "$db" 'lit\x41' 'val\x42'
expect_status 0 "$cellar" get "$db" 'lit\x41'
expect_stdout 'val\x42'
expect_status 1 "$cellar" get "$db" 'litA'
ok

# ----------------------------------------------------------------- dump

ddb=$tmp/dump
begin "dump prints KEY<TAB>VALUE lines in the order written, escaped"
expect_status 0 "$cellar" create "$ddb"
expect_status 0 "$cellar" put "$ddb" plain "value with spaces"
expect_status 0 "$cellar" put "$ddb" empty ""
expect_status 0 "$cellar" -x put "$ddb" 'a\x09b' 'v\x00w'
expect_status 0 "$cellar" put "$ddb" 'back\slash' $'nl\nend\x7f\xff~ '
expect_status 0 "$cellar" put "$ddb" gone soon
expect_status 0 "$cellar" del "$ddb" gone
expect_status 0 "$cellar" dump "$ddb"
expect_stdout $'plain\tvalue with spaces\n'$'empty\t\n''a\x09b'$'\t''v\x00w'$'\n''back\x5cslash'$'\t''nl\x0aend\x7f\xff~ '$'\n'
expect_stderr_empty
cp "$out" "$tmp/dump1"
ok

begin "dump of an empty store prints nothing"
expect_status 0 "$cellar" create "$cdb.empty"
expect_status 0 "$cellar" dump "$cdb.empty"
expect_stdout ""
ok

# ----------------------------------------------------------------- load

ldb=$tmp/load
begin "dump | load reproduces the store (load creates it)"
expect_status 0 "$cellar" load "$ldb" <"$tmp/dump1"
expect_stdout $'4\n'
expect_stderr_empty
expect_status 0 "$cellar" dump "$ldb"
sort "$out" >"$tmp/dump2.sorted"
sort "$tmp/dump1" >"$tmp/dump1.sorted"
cmp -s "$tmp/dump1.sorted" "$tmp/dump2.sorted" ||
	fail "the dump of the loaded store differs"
expect_status 0 "$cellar" get "$ldb" 'back\slash'
printf 'nl\nend\177\377~ ' >"$tmp/want"
expect_stdout_file "$tmp/want"
expect_status 0 "$cellar" count "$ldb"
expect_stdout $'4\n'
ok

begin "load skips empty lines and splits at the first TAB"
printf '\n\nk1\tv1\tmore\n\nk\\x5c2\tv\\x002\n' >"$tmp/in"
expect_status 0 "$cellar" load "$ldb" <"$tmp/in"
expect_stdout $'2\n'
expect_status 0 "$cellar" get "$ldb" k1
expect_stdout $'v1\tmore'
expect_status 0 "$cellar" get "$ldb" 'k\2'
printf 'v\0002' >"$tmp/want"
expect_stdout_file "$tmp/want"
ok

bdb=$tmp/bad
begin "load of a line without a TAB exits 1 and keeps the lines before it"
printf 'k1\tv1\nk2\tv2\nno tab here\nk3\tv3\n' >"$tmp/in"
expect_status 1 "$cellar" load "$bdb" <"$tmp/in"
expect_stdout ""
expect_stderr_prefix "cellar: load: stdin line 3: no TAB"
expect_status 0 "$cellar" get "$bdb" k1
expect_stdout "v1"
expect_status 0 "$cellar" get "$bdb" k2
expect_stdout "v2"
expect_status 1 "$cellar" get "$bdb" k3
expect_status 0 "$cellar" count "$bdb"
expect_stdout $'2\n'
ok

# ---------------------------------------------------------------- check

kdb=$tmp/check
begin "check on a healthy store exits 0"
expect_status 0 "$cellar" create "$kdb"
for i in $(seq 1 10); do
	expect_status 0 "$cellar" put "$kdb" "key$i" "value-$i-padding-padding"
done
expect_status 0 "$cellar" put "$kdb" target "IN-THE-MIDDLE-OF-A-RECORD"
for i in $(seq 11 20); do
	expect_status 0 "$cellar" put "$kdb" "key$i" "value-$i-padding-padding"
done
expect_status 0 "$cellar" check "$kdb"
expect_stdout $'21 items, ok\n'
expect_stderr_empty
ok

begin "check on a store with a flipped byte in a record exits 1"
segs=("$kdb"/*.seg)
if [ ${#segs[@]} -ne 1 ] || [ ! -f "${segs[0]}" ]; then
	fail "expected one .seg file in $kdb, found: ${segs[*]}"
fi
seg=${segs[0]}
size=$(stat -c %s "$seg")
# The byte at the "THE" of the target value, in the middle of its record.
off=$(grep -obUa 'IN-THE-MIDDLE' "$seg" | cut -d: -f1)
[ -n "$off" ] || fail "the target value is not in $seg"
off=$((off + 3))
if [ "$off" -le $((size / 4)) ] || [ "$off" -ge $((size * 3 / 4)) ]; then
	fail "offset $off is not well inside the $size-byte segment"
fi
byte=$(od -An -tu1 -j "$off" -N1 "$seg" | tr -d ' ')
# shellcheck disable=SC2059
printf "\\$(printf %03o $((byte ^ 0xff)))" |
	dd of="$seg" bs=1 seek="$off" conv=notrunc status=none
[ "$(stat -c %s "$seg")" -eq "$size" ] || fail "dd changed the file size"
expect_status 1 "$cellar" check "$kdb"
expect_stdout $'20 items, DAMAGED\n1 problem (see stderr)\n'
expect_stderr_prefix "cellar: check: "
ok

begin "the damaged record fails to read; the others still read"
expect_status 1 "$cellar" get "$kdb" target
expect_stdout ""
expect_stderr_prefix "cellar: get: "
expect_status 0 "$cellar" get "$kdb" key20
expect_stdout "value-20-padding-padding"
expect_status 1 "$cellar" dump "$kdb"
expect_stderr_prefix "cellar: dump: "
[ "$(wc -l <"$out")" -eq 20 ] || fail "dump did not print the 20 readable items"
ok

# ---------------------------------------------------------------- stats

begin "stats prints the statistics in order, then the segments"
expect_status 0 "$cellar" stats "$cdb"
expect_stderr_empty
cp "$out" "$tmp/stats"
names=$(head -n 12 "$tmp/stats" | cut -d' ' -f1 | tr '\n' ' ')
[ "$names" = "keys live_bytes dead_bytes segments segment_bytes index_bytes bytes_on_disk buckets overflow_buckets load_factor recovered_records rebuilt_index " ] ||
	fail "unexpected names or order: $names"
grep -Eq '^load_factor [0-9]+\.[0-9]{3}$' "$tmp/stats" ||
	fail "load_factor is not printed with three decimals"
expect_status 0 "$cellar" count "$cdb"
[ "$(cat "$out")" = "$(sed -n 's/^keys //p' "$tmp/stats")" ] ||
	fail "keys differs from count ($(cat "$out"))"
grep -q '^keys 3$' "$tmp/stats" || fail "no 'keys 3' line"
grep -q '^segment ' "$tmp/stats" || fail "no 'segment ' line"
ok

begin "stats: one segment line per .seg file, with its size"
nsegs=$(sed -n 's/^segments //p' "$tmp/stats")
[ "$(grep -c '^segment ' "$tmp/stats")" -eq "$nsegs" ] ||
	fail "segments $nsegs but a different number of segment lines"
total=0
while read -r word seq bytes live dead; do
	[ "$word" = segment ] || continue
	[[ $seq =~ ^[0-9a-f]{16}$ ]] || fail "bad segment number '$seq'"
	[ -f "$cdb/$seq.seg" ] || fail "no file $seq.seg for segment $seq"
	[ "$(stat -c %s "$cdb/$seq.seg")" -eq "$bytes" ] ||
		fail "segment $seq: $bytes bytes, but the file has another size"
	[ $((live + dead)) -le "$bytes" ] ||
		fail "segment $seq: live + dead bytes exceed its size"
	total=$((total + bytes))
done <"$tmp/stats"
grep -q "^segment_bytes $total\$" "$tmp/stats" ||
	fail "segment_bytes is not the sum of the segment sizes ($total)"
segs=("$cdb"/*.seg)
[ ${#segs[@]} -eq "$nsegs" ] || fail "the number of .seg files is not $nsegs"
ok

begin "stats of an empty store"
expect_status 0 "$cellar" stats "$cdb.empty"
grep -q '^keys 0$' "$out" || fail "no 'keys 0' line"
ok

begin "stats of a missing store exits 1"
expect_status 1 "$cellar" stats "$tmp/missing"
expect_stdout ""
expect_stderr_prefix "cellar: stats: "
ok

# ----------------------------------------------------------------- warm

begin "warm reads the store through silently and changes nothing"
expect_status 0 "$cellar" dump "$cdb"
cp "$out" "$tmp/before-warm"
expect_status 0 "$cellar" warm "$cdb"
expect_stdout ""
expect_stderr_empty
expect_status 0 "$cellar" dump "$cdb"
expect_stdout_file "$tmp/before-warm"
ok

begin "warm of a missing store exits 1"
expect_status 1 "$cellar" warm "$tmp/missing"
expect_stdout ""
expect_stderr_prefix "cellar: warm: "
ok

# -------------------------------------------------------------- version

begin "version prints the library version"
expect_status 0 "$cellar" version
[[ $(cat "$out") =~ ^cellar\ [0-9]+\.[0-9]+\.[0-9]+$ ]] ||
	fail "not 'cellar MAJOR.MINOR.PATCH'"
cp "$out" "$tmp/version"
expect_status 0 "$cellar" --version
expect_stdout_file "$tmp/version"
ok

# ---------------------------------------------------------- usage errors

begin "an unknown command exits 2"
expect_status 2 "$cellar" frobnicate "$db"
expect_stdout ""
expect_stderr_prefix "cellar: unknown command 'frobnicate'"
ok

begin "an unknown option exits 2"
expect_status 2 "$cellar" --frobnicate count "$db"
expect_stderr_prefix "cellar: unknown option '--frobnicate'"
ok

begin "no command exits 2"
expect_status 2 "$cellar"
ok

begin "a missing DIR argument exits 2"
for c in create get put del count dump load check stats warm; do
	expect_status 2 "$cellar" "$c"
	expect_stdout ""
	expect_stderr_prefix "cellar: $c: usage: cellar $c"
done
ok

begin "a missing or extra KEY/VALUE argument exits 2"
expect_status 2 "$cellar" put "$db" k
expect_status 2 "$cellar" get "$db"
expect_status 2 "$cellar" get "$db" k extra
expect_status 2 "$cellar" count "$db" extra
ok

begin "--help prints the usage and exits 0"
expect_status 0 "$cellar" --help
head -n 1 "$out" | grep -q '^usage: cellar ' || fail "no usage line"
grep -q '^  stats DIR ' "$out" || fail "stats is not in the help"
grep -q '^  warm DIR ' "$out" || fail "warm is not in the help"
ok

echo "# all $n checks passed"
