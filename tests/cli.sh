#!/usr/bin/env bash
#
# cli.sh - tests of the cellar command-line tool (tools/cellar.c).
#
#   bash tests/cli.sh path/to/cellar
#   bash tests/cli.sh --installed BUILD_DIR
#
# Runs the tool on stores in a temporary directory and checks its exact
# output and exit status.  With --installed, it first installs BUILD_DIR
# into a temporary destination (meson install --destdir), checks what was
# installed (the library needs only libc, cellar.pc requires nothing, the
# man page is there, the README example builds against the installed
# library with pkg-config) and then runs every check on the installed
# cellar.  Prints "ok N - description" per check and stops with
# "not ok N - description: problem" (and the command's output) at the first
# failure, exiting 1.  Needs tinycdb's cdb for the cdb round trip (skipped,
# saying so, when it is missing) and script(1) for the progress checks.
set -euo pipefail
shopt -s nullglob

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


# expect_stderr_has TEXT: the last command's stderr contains TEXT.
expect_stderr_has() {
	if ! grep -qF -- "$1" "$err"; then
		fail "stderr does not contain '$1'"
	fi
}

# expect_stdout_has TEXT: the last command's stdout contains TEXT.
expect_stdout_has() {
	if ! grep -qF -- "$1" "$out"; then
		fail "stdout does not contain '$1'"
	fi
}

# flip FILE OFFSET: invert the byte at OFFSET of FILE in place.
flip() {
	local byte
	byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	# shellcheck disable=SC2059
	printf "\\$(printf %03o $((byte ^ 0xff)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# ------------------------------------------------------- what is tested

if [ $# -eq 2 ] && [ "$1" = --installed ]; then
	build=$2
	dest=$tmp/dest
	begin "meson install --destdir installs the tool, library, headers, pc, man page"
	meson install -C "$build" --destdir "$dest" --no-rebuild --quiet \
		>"$out" 2>"$err" || fail "meson install failed"
	bins=("$dest"/*/*/bin/cellar "$dest"/*/bin/cellar)
	[ ${#bins[@]} -eq 1 ] || fail "no single installed bin/cellar: ${bins[*]}"
	cellar=${bins[0]}
	prefix=${cellar%/bin/cellar}
	libs=("$prefix"/lib*/libcellar.so.0 "$prefix"/lib/*/libcellar.so.0)
	[ ${#libs[@]} -eq 1 ] || fail "no single libcellar.so.0: ${libs[*]}"
	libdir=$(dirname "${libs[0]}")
	[ -f "$prefix/include/cellar.h" ] || fail "cellar.h not installed"
	[ -f "$prefix/include/cellar_fs.h" ] || fail "cellar_fs.h not installed"
	[ -f "$prefix/share/man/man1/cellar.1" ] || fail "cellar.1 not installed"
	[ -f "$libdir/pkgconfig/cellar.pc" ] || fail "cellar.pc not installed"
	export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	ok

	begin "libcellar needs only libc; cellar.pc requires nothing"
	ldd "${libs[0]}" >"$out" 2>"$err" || fail "ldd failed"
	sanitized=0
	if grep -qE 'lib(a|ub|t)san' "$out"; then
		sanitized=1  # a -Db_sanitize build links the sanitizers' runtime
	elif [ "$(grep -cvE 'linux-vdso|libc\.so|ld-linux|libpthread' "$out")" -ne 0 ]; then
		fail "libcellar links more than libc"
	fi
	export PKG_CONFIG_PATH=$libdir/pkgconfig
	pkg-config --print-requires-private cellar >"$out" 2>"$err" ||
		fail "pkg-config cellar fails"
	[ ! -s "$out" ] || fail "cellar.pc has Requires.private"
	pkg-config --print-requires cellar >"$out" 2>"$err"
	[ ! -s "$out" ] || fail "cellar.pc has Requires"
	ok

	begin "the README example builds with pkg-config and runs"
	if [ $sanitized = 1 ]; then
		echo "# SKIP: a sanitizer build; plain cc cannot link it"
	fi
	# The first C block of the README (Using it), alone.
	awk '/^```c$/ { if (!seen++) { on = 1; next } } on && /^```$/ { exit } on' \
		"$(dirname "$0")/../README.md" >"$tmp/app.c"
	grep -q cellar_open "$tmp/app.c" || fail "no example in README.md"
	sed -i "s|/tmp/fruit|$tmp/fruit|" "$tmp/app.c"
	if [ $sanitized = 0 ]; then
		# shellcheck disable=SC2046
		cc -o "$tmp/app" "$tmp/app.c" $(pkg-config --define-variable=prefix="$prefix" \
			--cflags --libs cellar) >"$out" 2>"$err" ||
			fail "the example does not build"
		expect_status 0 "$tmp/app"
		expect_stdout $'apple is red\n'
		ldd "$tmp/app" >"$tmp/ldd"
		grep -q "$libdir/libcellar.so.0" "$tmp/ldd" ||
			fail "the example does not use the installed libcellar"
		ok
	fi
elif [ $# -eq 1 ] && [ -x "$1" ]; then
	cellar=$1
else
	echo "usage: $0 path/to/cellar | --installed BUILD_DIR" >&2
	exit 2
fi
case $cellar in
/*) ;;
*) cellar=$PWD/$cellar ;;
esac

# --------------------------------------------------------------- create

db=$tmp/db

begin "create makes a new store, silently"
expect_status 0 "$cellar" create "$db"
expect_stdout ""
expect_stderr_empty
[ -d "$db" ] || fail "$db was not created"
ok

begin "create on an existing store fails (exit 4) and keeps its data"
expect_status 0 "$cellar" put "$db" keep me
expect_status 4 "$cellar" create "$db"
expect_stdout ""
expect_stderr_prefix "cellar: $db: already holds a store"
expect_status 0 "$cellar" get "$db" keep
expect_stdout "me"
ok

begin "put on a missing store exits 4, names it, and creates nothing"
expect_status 4 "$cellar" put "$tmp/missing" k v
expect_stderr_prefix "cellar: $tmp/missing: no such store or file"
[ ! -e "$tmp/missing" ] || fail "put created $tmp/missing"
ok

begin "a write to a store another process writes exits 4: store is locked"
if command -v flock >/dev/null 2>&1; then
	expect_status 4 flock "$db/LOCK" "$cellar" put "$db" k v
	expect_stderr_prefix "cellar: $db: store is locked by another writer"
	expect_status 0 flock "$db/LOCK" "$cellar" get "$db" keep
	expect_stdout "me"
	ok
else
	echo "# SKIP: flock(1) is not installed"
fi

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

begin "put --ttl: the key is there until it expires, then absent"
expect_status 0 "$cellar" put "$db" longlived v --ttl 3600000
expect_status 0 "$cellar" get "$db" longlived
expect_stdout "v"
expect_status 0 "$cellar" put --ttl=1 "$db" shortlived v
sleep 0.05
expect_status 1 "$cellar" get "$db" shortlived
expect_stderr_prefix "cellar: $db: key 'shortlived': key not found"
ok

begin "put --ttl takes milliseconds, at least 1; other commands refuse it"
expect_status 2 "$cellar" put "$db" k v --ttl 0
expect_status 2 "$cellar" put "$db" k v --ttl soon
expect_status 2 "$cellar" get "$db" k --ttl 5
ok

begin "get of an absent key exits 1 and names the key"
expect_status 1 "$cellar" get "$db" absent
expect_stdout ""
expect_stderr_prefix "cellar: $db: key 'absent': key not found"
ok

begin "get of a missing store exits 4"
expect_status 4 "$cellar" get "$tmp/missing" k
expect_stderr_prefix "cellar: $tmp/missing: "
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
expect_stderr_prefix "cellar: $db: key 'absent': "
expect_status 1 "$cellar" del "$db" apple
ok

begin "put of an empty key exits 4"
expect_status 4 "$cellar" put "$db" "" v
expect_stderr_prefix "cellar: $db: put: key '': key is empty"
ok

begin "put KEY - reads the value from stdin"
printf 'from\nstdin\000!' >"$tmp/want"
expect_status 0 "$cellar" put "$db" stdin - <"$tmp/want"
expect_status 0 "$cellar" get "$db" stdin
expect_stdout_file "$tmp/want"
ok

begin "put -x KEY '\\x2d' stores a lone dash"
expect_status 0 "$cellar" put -x "$db" dash '\x2d'
expect_status 0 "$cellar" get "$db" dash
expect_stdout "-"
ok

begin "put --file and -f read a value of 300 KiB from a file"
head -c 307200 /dev/urandom >"$tmp/big"
expect_status 0 "$cellar" put "$db" big --file "$tmp/big"
expect_status 0 "$cellar" get "$db" big
expect_stdout_file "$tmp/big"
expect_status 0 "$cellar" put -f "$tmp/want" "$db" big2
expect_status 0 "$cellar" get "$db" big2
expect_stdout_file "$tmp/want"
expect_status 0 "$cellar" put "$db" big3 --file="$tmp/big"
expect_status 0 "$cellar" get "$db" big3
expect_stdout_file "$tmp/big"
ok

begin "put with both VALUE and --file, or neither, is a usage error"
expect_status 2 "$cellar" put "$db" k v --file "$tmp/big"
expect_stderr_has "usage: cellar put"
expect_status 2 "$cellar" put "$db" k
expect_stderr_has "usage: cellar put"
expect_status 4 "$cellar" put "$db" k --file "$tmp/no-such-file"
expect_stderr_prefix "cellar: $db: cannot open $tmp/no-such-file: "
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

begin "list prints the keys only, in the order written"
expect_status 0 "$cellar" list "$cdb"
expect_stdout $'c\ne\na\n'
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

begin "-x with a NUL byte in the key; the message escapes the key"
expect_status 0 "$cellar" --escaped put "$db" 'n\x00ul' 'x\xffy'
expect_status 0 "$cellar" -x get "$db" 'n\x00ul'
printf 'x\377y' >"$tmp/want"
expect_stdout_file "$tmp/want"
expect_status 1 "$cellar" -x get "$db" 'n'
expect_status 1 "$cellar" get "$db" 'n\x00ul'
expect_stderr_prefix "cellar: $db: key 'n\\x5cx00ul': key not found"
expect_status 1 "$cellar" -x get "$db" 'z\x01'
expect_stderr_prefix "cellar: $db: key 'z\\x01': key not found"
ok

begin "without -x, KEY and VALUE are taken literally"
expect_status 0 "$cellar" put "$db" 'lit\x41' 'val\x42'
expect_status 0 "$cellar" get "$db" 'lit\x41'
expect_stdout 'val\x42'
expect_status 1 "$cellar" get "$db" 'litA'
ok

begin "options go anywhere on the line"
expect_status 0 "$cellar" get -x "$db" 'n\x00ul'
printf 'x\377y' >"$tmp/want"
expect_stdout_file "$tmp/want"
expect_status 0 "$cellar" get "$db" 'n\x00ul' -x
expect_stdout_file "$tmp/want"
expect_status 0 "$cellar" get "$db" --escaped 'n\x00ul'
expect_stdout_file "$tmp/want"
expect_status 0 "$cellar" put "$db" -- -dash -5
expect_status 0 "$cellar" get "$db" -- -dash
expect_stdout "-5"
ok

# ------------------------------------------------------------ get --many

begin "get --many reads escaped keys from stdin and prints KEY<TAB>VALUE"
printf 'keep\nabsent\nn\\x00ul\r\nempty\n' >"$tmp/keys"
expect_status 1 "$cellar" get --many "$db" <"$tmp/keys"
expect_stdout $'keep\tme\nn\\x00ul\tx\\xffy\nempty\t\n'
expect_stderr_prefix "cellar: $db: key 'absent': key not found"
printf 'keep\nempty\n' | expect_status 0 "$cellar" get "$db" --many
expect_stdout $'keep\tme\nempty\t\n'
expect_stderr_empty
expect_status 2 "$cellar" get --many "$db" keep
expect_stderr_has "usage: cellar get"
ok

begin "get --many keeps the input's order across batches and long values"
seq 1 130 | awk '{printf "m%03d\tv%d\n", $1, $1}' >"$tmp/many.tsv"
expect_status 0 "$cellar" load --tsv "$tmp/manystore" -f "$tmp/many.tsv"
head -c 100000 /dev/zero | tr '\0' 'z' >"$tmp/big"
expect_status 0 "$cellar" put "$tmp/manystore" big --file "$tmp/big"
{ seq 130 -1 1 | awk '{printf "m%03d\n", $1}'; echo big; echo m001; } >"$tmp/many.keys"
expect_status 0 "$cellar" get --many "$tmp/manystore" <"$tmp/many.keys"
[ "$(wc -l <"$out")" -eq 132 ] || fail "want 132 lines, got $(wc -l <"$out")"
[ "$(sed -n 1p "$out")" = "$(printf 'm130\tv130')" ] || fail "first line: $(sed -n 1p "$out")"
[ "$(sed -n 130p "$out")" = "$(printf 'm001\tv1')" ] || fail "line 130: $(sed -n 130p "$out")"
[ "$(sed -n 131p "$out" | wc -c)" -eq 100005 ] || fail "the long value is not whole"
[ "$(sed -n 132p "$out")" = "$(printf 'm001\tv1')" ] || fail "last line: $(sed -n 132p "$out")"
ok

# ----------------------------------------------------------------- dump

ddb=$tmp/dump
begin "dump writes a header, KEY<TAB>VALUE lines in the order written, escaped, and an end line"
expect_status 0 "$cellar" create "$ddb"
expect_status 0 "$cellar" put "$ddb" plain "value with spaces"
expect_status 0 "$cellar" put "$ddb" empty ""
expect_status 0 "$cellar" -x put "$ddb" 'a\x09b' 'v\x00w'
expect_status 0 "$cellar" put "$ddb" 'back\slash' $'nl\nend\x7f\xff~ \r'
expect_status 0 "$cellar" put "$ddb" gone soon
expect_status 0 "$cellar" del "$ddb" gone
body=$'plain\tvalue with spaces\n'$'empty\t\n''a\x09b'$'\t''v\x00w'$'\n''back\x5cslash'$'\t''nl\x0aend\x7f\xff~ \x0d'$'\n'
expect_status 0 "$cellar" dump "$ddb"
expect_stdout "cellar-dump 1 4"$'\n'"$body"$'end\n'
expect_stderr_empty
cp "$out" "$tmp/dump1"
ok

begin "dump --tsv writes the lines alone; -f writes to a file"
expect_status 0 "$cellar" dump --tsv "$ddb"
expect_stdout "$body"
cp "$out" "$tmp/dump1.tsv"
expect_status 0 "$cellar" dump "$ddb" -f "$tmp/dump-f"
expect_stdout ""
cmp -s "$tmp/dump-f" "$tmp/dump1" || fail "dump -f wrote something else"
ok

begin "dump --cdb writes cdb -d's format, raw bytes"
expect_status 0 "$cellar" dump --cdb "$ddb"
printf '+5,17:plain->value with spaces\n+5,0:empty->\n+3,3:a\tb->v\000w\n+10,11:back\\slash->nl\nend\177\377~ \r\n\n' >"$tmp/want"
expect_stdout_file "$tmp/want"
cp "$out" "$tmp/dump1.cdb"
ok

begin "dump of an empty store"
expect_status 0 "$cellar" create "$cdb.empty"
expect_status 0 "$cellar" dump "$cdb.empty"
expect_stdout $'cellar-dump 1 0\nend\n'
expect_status 0 "$cellar" dump --tsv "$cdb.empty"
expect_stdout ""
expect_status 0 "$cellar" dump --cdb "$cdb.empty"
expect_stdout $'\n'
ok

begin "dump with --tsv and --cdb together, or a load option, is a usage error"
expect_status 2 "$cellar" dump --tsv --cdb "$ddb"
expect_stderr_has "usage: cellar dump"
expect_stderr_has "options may go anywhere"
expect_status 2 "$cellar" dump --no-overwrite "$ddb"
expect_stderr_prefix "cellar: dump: --no-overwrite/--dups does not apply to dump"
ok

# ----------------------------------------------------------------- load

ldb=$tmp/load
begin "dump | load reproduces the store (load creates it) and says what it did"
expect_status 0 "$cellar" load "$ldb" <"$tmp/dump1"
expect_stdout "loaded 4 records; 4 keys in $ldb"$'\n'
expect_stderr_empty
expect_status 0 "$cellar" dump "$ldb"
expect_stdout_file "$tmp/dump1"
expect_status 0 "$cellar" get "$ldb" 'back\slash'
printf 'nl\nend\177\377~ \r' >"$tmp/want"
expect_stdout_file "$tmp/want"
ok

begin "build publishes a new store over DIR; a bad input or a writer leaves DIR as it was"
bdir=$tmp/built
expect_status 0 "$cellar" create "$bdir"
expect_status 0 "$cellar" put "$bdir" old 1
printf 'cellar-dump 1 3\nnew\tA\nother\tB\nnew\tC\nend\n' >"$tmp/b.dump"
expect_status 0 "$cellar" build "$bdir" -f "$tmp/b.dump"
expect_stdout "built 3 records; 2 keys in $bdir"$'\n'
expect_status 0 "$cellar" get "$bdir" new
expect_stdout "C"
expect_status 1 "$cellar" get "$bdir" old
left=("$bdir".build-*) # nullglob: empty when none is left
[ ${#left[@]} -eq 0 ] || fail "a build directory was left beside DIR: ${left[*]}"
printf 'cellar-dump 1 3\nx\ty\n' >"$tmp/bad.dump"
expect_status 4 "$cellar" build "$bdir" -f "$tmp/bad.dump"
expect_stderr_has "line"
expect_status 0 "$cellar" get "$bdir" other
expect_stdout "B"
if command -v flock >/dev/null 2>&1; then
	expect_status 4 flock "$bdir/LOCK" "$cellar" build "$bdir" -f "$tmp/b.dump"
	expect_status 0 "$cellar" count "$bdir"
	expect_stdout $'2\n'
fi
expect_status 0 "$cellar" build --help
expect_stdout_has "publish it as DIR"
ok

begin "load -f FILE, --tsv and --cdb read their formats"
expect_status 0 "$cellar" load -f "$tmp/dump1" "$ldb.f"
expect_status 0 "$cellar" dump "$ldb.f"
expect_stdout_file "$tmp/dump1"
expect_status 0 "$cellar" load --tsv "$ldb.tsv" <"$tmp/dump1.tsv"
expect_status 0 "$cellar" dump "$ldb.tsv"
expect_stdout_file "$tmp/dump1"
cat "$tmp/dump1.cdb" | expect_status 0 "$cellar" load --cdb "$ldb.cdb"
expect_status 0 "$cellar" dump --cdb "$ldb.cdb"
expect_stdout_file "$tmp/dump1.cdb"
ok

begin "load --tsv skips empty lines, splits at the first TAB, drops the CR of CRLF"
printf '\n\nk1\tv1\tmore\r\n\nk\\x5c2\tv\\x002\r\nk3\tcr\\x0d\r\n' >"$tmp/in"
expect_status 0 "$cellar" load --tsv "$ldb" <"$tmp/in"
expect_stdout "loaded 3 records; 7 keys in $ldb"$'\n'
expect_status 0 "$cellar" get "$ldb" k1
expect_stdout $'v1\tmore'
expect_status 0 "$cellar" get "$ldb" 'k\2'
printf 'v\0002' >"$tmp/want"
expect_stdout_file "$tmp/want"
expect_status 0 "$cellar" get "$ldb" k3
expect_stdout $'cr\r'
ok

# load_rejects DESCRIPTION STATUS MESSAGE [LOAD OPTIONS] < input: the load
# into a new store fails and leaves nothing behind.
load_rejects() {
	local st=$1 msg=$2
	shift 2
	rm -rf "$tmp/new"
	expect_status "$st" "$cellar" load "$@" "$tmp/new"
	expect_stdout ""
	expect_stderr_prefix "cellar: $tmp/new: $msg"
	[ ! -e "$tmp/new" ] || fail "a failed load left $tmp/new behind"
	local left=("$tmp"/new.*)
	[ ${#left[@]} -eq 0 ] || fail "a failed load left ${left[*]} behind"
}

begin "load rejects a truncated dump, naming the line, and leaves no store"
head -c 38 "$tmp/dump1" | load_rejects 4 "stdin line 2: the last line has no newline"
head -n 3 "$tmp/dump1" | load_rejects 4 "stdin line 3: no 'end' line: the input is cut short"
head -n 5 "$tmp/dump1" | load_rejects 4 "stdin line 5: no 'end' line"
sed '3d' "$tmp/dump1" | load_rejects 4 "stdin line 5: the header announced 4 records, but 3 came"
head -c 38 "$tmp/dump1" >"$tmp/cut"
load_rejects 4 "$tmp/cut line 2: the last line has no newline" -f "$tmp/cut"
head -c 30 "$tmp/dump1.tsv" | load_rejects 4 "stdin line 2: the last line has no newline" --tsv
load_rejects 4 "cannot open $tmp/no-such-dump: " -f "$tmp/no-such-dump"
ok

begin "load into DIR/ (a trailing slash) builds the store beside it"
expect_status 0 "$cellar" load "$tmp/slash/" <"$tmp/dump1"
[ -f "$tmp/slash/meta" ] || fail "no store in $tmp/slash"
left=("$tmp"/slash/.load* "$tmp"/slash.*)
[ ${#left[@]} -eq 0 ] || fail "load left ${left[*]} behind"
ok

begin "load rejects malformed input"
load_rejects 4 "stdin line 0: empty input, not a cellar dump" </dev/null
printf 'k\tv\n' | load_rejects 4 "stdin line 1: not a cellar dump"
printf 'cellar-dump 2 0\nend\n' | load_rejects 4 "stdin line 1: dump format version 2"
printf 'cellar-dump 1 1\nno tab\nend\n' | load_rejects 4 "stdin line 2: no TAB between key and value"
printf 'cellar-dump 1 1\n\tempty key\nend\n' | load_rejects 4 "stdin line 2: the key is empty"
printf 'cellar-dump 1 0\nend\nmore\n' | load_rejects 4 "stdin line 2: more input after 'end'"
printf 'k1\tv1\nno tab here\nk3\tv3\n' | load_rejects 4 "stdin line 2: no TAB" --tsv
ok

begin "load --cdb rejects truncated and malformed cdb input"
head -c 20 "$tmp/dump1.cdb" | load_rejects 4 "stdin record 1: the record is cut short" --cdb
head -c -1 "$tmp/dump1.cdb" | load_rejects 4 "stdin record 5: no empty line at the end" --cdb
printf '+1,1:a->b\n' | load_rejects 4 "stdin record 2: no empty line" --cdb
printf '+1,1:a-b\n\n' | load_rejects 4 "stdin record 1: not a '+KLEN,VLEN:KEY->VALUE' record" --cdb
printf '+x,1:a->b\n\n' | load_rejects 4 "stdin record 1: not a" --cdb
printf '+0,1:->b\n\n' | load_rejects 4 "stdin record 1: the key is empty" --cdb
printf '+1,1:a->b\n\nx' | load_rejects 4 "stdin record 2: more input after the empty line" --cdb
ok

begin "a failed load leaves an existing store untouched"
expect_status 0 "$cellar" dump "$ldb"
cp "$out" "$tmp/before"
printf 'cellar-dump 1 2\nk1\tCHANGED\nbad line\nend\n' >"$tmp/in"
expect_status 4 "$cellar" load "$ldb" <"$tmp/in"
expect_stderr_prefix "cellar: $ldb: stdin line 3: no TAB"
expect_status 0 "$cellar" dump "$ldb"
expect_stdout_file "$tmp/before"
ok

begin "load --dups: last (default), first, error"
printf 'cellar-dump 1 3\nk\tv1\nz\tq\nk\tv2\nend\n' >"$tmp/dups"
expect_status 0 "$cellar" load "$tmp/dl" <"$tmp/dups"
expect_stdout "loaded 3 records; 2 keys in $tmp/dl"$'\n'
expect_status 0 "$cellar" get "$tmp/dl" k
expect_stdout "v2"
expect_status 0 "$cellar" load --dups=first "$tmp/df" <"$tmp/dups"
expect_stdout "loaded 2 records, skipped 1 (--dups=first); 2 keys in $tmp/df"$'\n'
expect_status 0 "$cellar" get "$tmp/df" k
expect_stdout "v1"
load_rejects 4 "stdin line 4: key 'k' again (first on line 2; --dups=error)" --dups error <"$tmp/dups"
expect_status 4 "$cellar" load --dups=error "$tmp/dl" <"$tmp/dups"
expect_status 0 "$cellar" get "$tmp/dl" k
expect_stdout "v2"
expect_status 2 "$cellar" load --dups=sometimes "$tmp/dl" <"$tmp/dups"
expect_stderr_has "--dups takes last, first or error"
ok

begin "load --no-overwrite keeps the values already in the store"
expect_status 0 "$cellar" put "$tmp/dl" k original
printf 'cellar-dump 1 2\nk\tnew\nfresh\tone\nend\n' >"$tmp/in"
expect_status 0 "$cellar" load --no-overwrite "$tmp/dl" <"$tmp/in"
expect_stdout "loaded 1 record, skipped 1 (--no-overwrite or --dups=first); 3 keys in $tmp/dl"$'\n'
expect_status 0 "$cellar" get "$tmp/dl" k
expect_stdout "original"
expect_status 0 "$cellar" get "$tmp/dl" fresh
expect_stdout "one"
ok

# ---------------------------------------------------------------- tinycdb

begin "a round trip through tinycdb: cdb -c, cdb -d, load --cdb, dump --cdb, cdb -c"
if command -v cdb >/dev/null 2>&1; then
	# 20,000 records of binary keys and values (every byte value, NUL and
	# newline included); the record number makes each key unique.
	perl -e 'srand(12); for my $i (1..20000) {
		my $k = pack("N", $i) . join("", map { chr(int(rand(256))) } 1..int(rand(20)));
		my $v = join("", map { chr(int(rand(256))) } 1..int(rand(200)));
		printf "+%d,%d:%s->%s\n", length($k), length($v), $k, $v; }
		print "\n";' >"$tmp/cdb.in"
	cdb -c "$tmp/a.cdb" <"$tmp/cdb.in" || fail "cdb -c failed"
	cdb -d "$tmp/a.cdb" >"$tmp/a.txt" || fail "cdb -d failed"
	cmp -s "$tmp/cdb.in" "$tmp/a.txt" || fail "cdb -d does not give back cdb -c's input"
	expect_status 0 "$cellar" load --cdb "$tmp/fromcdb" <"$tmp/a.txt"
	expect_stdout "loaded 20000 records; 20000 keys in $tmp/fromcdb"$'\n'
	expect_status 0 "$cellar" dump --cdb "$tmp/fromcdb" -f "$tmp/b.txt"
	cmp -s "$tmp/a.txt" "$tmp/b.txt" || fail "dump --cdb differs from cdb -d"
	cdb -c "$tmp/b.cdb" <"$tmp/b.txt" || fail "cdb -c of dump --cdb failed"
	cmp -s "$tmp/a.cdb" "$tmp/b.cdb" || fail "the cdb files differ"
	# A value read back by key: the 7th record's key, escaped, and value.
	perl -e 'local $/; $_ = <STDIN>; my $n = 0;
		while (/\G\+(\d+),(\d+):/gc) { my ($k, $v) = (substr($_, pos, $1),
			substr($_, pos() + $1 + 2, $2)); pos() += $1 + $2 + 3;
			next unless ++$n == 7;
			open(my $f, ">", $ARGV[0]) or die; print $f $v; close $f;
			print join("", map { sprintf("\\x%02x", ord) } split //, $k); }' \
		"$tmp/want" <"$tmp/a.txt" >"$tmp/key7"
	[ -s "$tmp/key7" ] || fail "no 7th record"
	expect_status 0 "$cellar" -x get "$tmp/fromcdb" "$(cat "$tmp/key7")"
	expect_stdout_file "$tmp/want"
	ok
else
	echo "# SKIP: tinycdb's cdb is not installed (apt-get install tinycdb)"
fi

# ------------------------------------------------------- verify / check

kdb=$tmp/check
begin "verify on a healthy store exits 0; check is the same"
expect_status 0 "$cellar" create "$kdb"
for i in $(seq 1 10); do
	expect_status 0 "$cellar" put "$kdb" "key$i" "value-$i-padding-padding"
done
expect_status 0 "$cellar" put "$kdb" target "IN-THE-MIDDLE-OF-A-RECORD"
for i in $(seq 11 20); do
	expect_status 0 "$cellar" put "$kdb" "key$i" "value-$i-padding-padding"
done
expect_status 0 "$cellar" verify "$kdb"
expect_stdout_has "21 records (21 puts, 0 deletes), 21 live keys"
expect_stdout_has "index: 21 keys, 21 slots checked against the log"
[ "$(tail -n 1 "$out")" = ok ] || fail "the last line is not 'ok'"
expect_stderr_empty
cp "$out" "$tmp/verify.ok"
expect_status 0 "$cellar" check "$kdb"
expect_stdout_file "$tmp/verify.ok"
expect_status 0 "$cellar" verify --json "$kdb"
expect_stdout_has '"ok":true,'
expect_stdout_has '"records":21,'
expect_stdout_has '"damage":{}}'
ok

cp -r "$kdb" "$tmp/pristine"
begin "verify on a store with a flipped byte in a record exits 3 and says where"
segs=("$kdb"/*.seg)
[ ${#segs[@]} -eq 1 ] || fail "expected one .seg file in $kdb, found: ${segs[*]}"
seg=${segs[0]}
size=$(stat -c %s "$seg")
off=$(grep -obUa 'IN-THE-MIDDLE' "$seg" | cut -d: -f1)
[ -n "$off" ] || fail "the target value is not in $seg"
rec=$((off - 13))  # 4 checksum, 1 kind, 1 + 1 lengths, 6 key bytes
flip "$seg" $((off + 3))
[ "$(stat -c %s "$seg")" -eq "$size" ] || fail "the flip changed the file size"
expect_status 3 "$cellar" verify "$kdb"
expect_stdout_has "20 records (20 puts, 0 deletes), 20 live keys"
expect_stdout_has "damage record: 1 time, 38 bytes, first in $(basename "$seg") at offset $rec"
expect_stdout_has "damage slot-bad: 1 time"
expect_stdout_has "damage count: 1 time"
expect_stdout_has "DAMAGED: 3 problems"
expect_status 3 "$cellar" verify --json "$kdb"
expect_stdout_has '"ok":false,'
expect_stdout_has "\"record\":{\"count\":1,\"bytes\":38,\"first_segment\":\"$(basename "$seg" .seg)\",\"first_offset\":$rec,"
expect_status 3 "$cellar" check "$kdb"
ok

begin "the damaged record fails to read (exit 3); the others still read"
expect_status 3 "$cellar" get "$kdb" target
expect_stdout ""
expect_stderr_prefix "cellar: $kdb: key 'target': file is damaged"
expect_status 0 "$cellar" get "$kdb" key20
expect_stdout "value-20-padding-padding"
expect_status 3 "$cellar" dump --tsv "$kdb"
expect_stderr_prefix "cellar: $kdb: skipped: "
[ "$(wc -l <"$out")" -eq 20 ] || fail "dump did not print the 20 readable items"
ok

begin "repair rebuilds the index; repair --rewrite then drops the damaged record"
expect_status 0 "$cellar" repair "$kdb"
expect_stdout_has "$kdb: rebuilt the index from the segments (it had slot-bad damage)"
expect_stdout_has "1 damaged record (38 bytes) stays in the log as dead bytes; 'cellar repair --rewrite $kdb' copies the store without it"
expect_status 1 "$cellar" get "$kdb" target
expect_status 3 "$cellar" verify "$kdb"
expect_stdout_has "DAMAGED: 1 problem;"
expect_status 0 "$cellar" put "$kdb" target again
expect_status 0 "$cellar" repair --rewrite "$kdb"
expect_stdout_has "$kdb: the index agrees with the log; kept it (21 keys)"
expect_stdout_has "$kdb: rewrote the store: 21 items copied, no damaged record left"
expect_status 0 "$cellar" verify "$kdb"
[ "$(tail -n 1 "$out")" = ok ] || fail "verify after repair --rewrite is not ok"
expect_status 0 "$cellar" get "$kdb" target
expect_stdout "again"
left=("$kdb".*)
[ ${#left[@]} -eq 0 ] || fail "repair --rewrite left ${left[*]} behind"
ok

# A store spread over several index chunks, for index damage.
(echo "cellar-dump 1 20000"
 seq 1 20000 | awk '{printf "key%06d\tvalue-%d-padding\n", $1, $1}'
 echo end) >"$tmp/20k.dump"
begin "a store spread over several index chunks"
expect_status 0 "$cellar" load "$tmp/s20k" <"$tmp/20k.dump"
[ "$(stat -c %s "$tmp/s20k/index")" -gt 200000 ] || fail "the index is small"
ok

begin "verify on a store with a damaged index: every chunk checked, the segments still scanned"
cp -r "$tmp/s20k" "$tmp/bidx"
flip "$tmp/bidx/index" 70000
flip "$tmp/bidx/index" 200000
expect_status 3 "$cellar" verify "$tmp/bidx"
expect_stdout_has "20000 records (20000 puts, 0 deletes), 20000 live keys"
expect_stdout_has "index: not cross-checked"
expect_stdout_has "damage index-chunk: 2 times, first at index offset 69632, then at index offset 135168"
expect_stdout_has "DAMAGED: 2 problems; 'cellar repair $tmp/bidx' rebuilds the index"
# A read-only handle serves every intact key despite the damaged chunks.
expect_status 0 "$cellar" dump "$tmp/bidx" -f "$tmp/bidx.dump"
[ "$(wc -l <"$tmp/bidx.dump")" -eq 20002 ] || fail "dump lost keys"
expect_status 0 "$cellar" repair "$tmp/bidx"
expect_stdout "$tmp/bidx: rebuilt the index from the segments (it had index-chunk damage) and checkpointed it: 20000 records replayed, 20000 keys"$'\n'
expect_status 0 "$cellar" verify "$tmp/bidx"
expect_status 0 "$cellar" dump "$tmp/bidx"
expect_stdout_file "$tmp/20k.dump"
ok

begin "verify on a store whose index header is damaged, or missing"
cp -r "$tmp/s20k" "$tmp/bhdr"
flip "$tmp/bhdr/index" 30
expect_status 3 "$cellar" verify "$tmp/bhdr"
expect_stdout_has "damage index-file: 1 time"
rm "$tmp/bhdr/index"
expect_status 3 "$cellar" verify --json "$tmp/bhdr"
expect_stdout_has '"index-file":{"count":1,"bytes":0,"first_segment":null,"first_offset":0,"places":[{"segment":null,"offset":0}],"first":"there is no index file"}'
expect_status 0 "$cellar" repair "$tmp/bhdr"
expect_status 0 "$cellar" verify "$tmp/bhdr"
ok

begin "verify on a truncated segment"
cp -r "$tmp/s20k" "$tmp/btr"
segs=("$tmp/btr"/*.seg)
size=$(stat -c %s "${segs[0]}")
truncate -s $((size - 100)) "${segs[0]}"
expect_status 3 "$cellar" verify "$tmp/btr"
expect_stdout_has "damage tail: 1 time"
expect_stdout_has "damage index-stale: 1 time"
expect_status 0 "$cellar" repair "$tmp/btr"
expect_stdout_has "rebuilt the index from the segments (it had index-stale damage)"
expect_stdout_has "bytes of torn tail off the newest segment"
expect_status 0 "$cellar" verify "$tmp/btr"
expect_status 0 "$cellar" count "$tmp/btr"
[ "$(cat "$out")" -lt 20000 ] && [ "$(cat "$out")" -gt 19990 ] ||
	fail "the truncated store keeps $(cat "$out") keys"
ok

begin "repair of a sound store keeps the index"
expect_status 0 "$cellar" repair "$tmp/s20k"
expect_stdout "$tmp/s20k: the index agrees with the log; kept it (20000 keys)"$'\n'
ok

begin "a damaged meta file gives exit 3 everywhere"
cp -r "$tmp/pristine" "$tmp/bmeta"
flip "$tmp/bmeta/meta" 20
for c in get count dump verify repair stats; do
	if [ $c = get ]; then
		expect_status 3 "$cellar" $c "$tmp/bmeta" key1
	else
		expect_status 3 "$cellar" $c "$tmp/bmeta"
	fi
	expect_stderr_prefix "cellar: $tmp/bmeta: file is damaged"
done
ok

begin "verify of a missing store or a foreign directory exits 4 or 3"
expect_status 4 "$cellar" verify "$tmp/missing"
expect_stderr_prefix "cellar: $tmp/missing: no such store or file"
mkdir "$tmp/foreign"
head -c 64 /dev/urandom >"$tmp/foreign/meta"
expect_status 3 "$cellar" verify "$tmp/foreign"
ok

# ---------------------------------------------------------------- compact

begin "compact prints what the pass did, with units; --json"
for i in $(seq 1 5); do
	expect_status 0 "$cellar" put "$cdb" a "again$i"
done
expect_status 0 "$cellar" compact --dead-pct 10 "$cdb"
[[ $(cat "$out") =~ ^$cdb:\ compacted\ 1\ segment:\ copied\ 3\ records\ \([0-9]+\ bytes\),\ dropped\ [0-9]+\ tombstones,\ reclaimed\ [0-9]+\ bytes\ in\ [0-9.]+\ s\ \(longest\ writer\ pause\ [0-9.]+\ ms\)$ ]] ||
	fail "unexpected compact output"
expect_status 0 "$cellar" compact "$cdb" --json
[[ $(cat "$out") =~ ^\{\"segments_compacted\":0,\"records_copied\":0,\"bytes_copied\":0,\"tombstones_dropped\":0,\"bytes_reclaimed\":0,\"seconds\":[0-9.]+,\"longest_pause_ms\":[0-9.]+,\"complete\":true\}$ ]] ||
	fail "unexpected compact --json output"
expect_status 2 "$cellar" compact --dead-pct 0 "$cdb"
expect_status 2 "$cellar" compact --dead-pct=101 "$cdb"
expect_stderr_has "--dead-pct takes a percentage, 1..100"
expect_status 0 "$cellar" list "$cdb"
expect_stdout $'c\ne\na\n'
ok

# ---------------------------------------------------------------- backup

begin "backup writes a copy that opens and verifies; --json; DEST must be new"
expect_status 0 "$cellar" backup "$cdb" "$tmp/copy"
[[ $(cat "$out") =~ ^$cdb:\ backup\ of\ [0-9]+\ keys\ to\ $tmp/copy:\ linked\ [0-9]+\ files?\ \([0-9]+\ bytes\),\ copied\ [0-9]+\ files?\ \([0-9]+\ bytes\)$ ]] ||
	fail "unexpected backup output"
expect_status 0 "$cellar" verify "$tmp/copy"
expect_status 0 "$cellar" list "$tmp/copy"
expect_stdout $'c\ne\na\n'
expect_status 4 "$cellar" backup "$cdb" "$tmp/copy"
expect_stderr_has "exists"
expect_status 0 "$cellar" backup --json "$cdb" "$tmp/copy2"
[[ $(cat "$out") =~ ^\{\"keys\":3,\"linked_files\":[0-9]+,\"linked_bytes\":[0-9]+,\"copied_files\":[0-9]+,\"copied_bytes\":[0-9]+,\"index_bytes\":[0-9]+\}$ ]] ||
	fail "unexpected backup --json output"
expect_status 2 "$cellar" backup "$cdb"
expect_status 4 "$cellar" backup "$tmp/missing" "$tmp/copy3"
expect_stderr_prefix "cellar: $tmp/missing: no such store or file"
ok

# ---------------------------------------------------------------- stats

names="keys live_bytes dead_bytes segments segment_bytes index_bytes bytes_on_disk buckets overflow_buckets load_factor avg_probe puts deletes gets hits misses syncs compactions recovered_records rebuilt_index torn_bytes damaged_bytes checkpoints checkpoint_failures ckpt_chunks_copied ckpt_copy_bytes ckpt_copy_bytes_max ckpt_longest_hold_ms "
begin "stats prints every cellar_stats() field in order, with units, then the segments"
expect_status 0 "$cellar" stats "$cdb"
expect_stderr_empty
cp "$out" "$tmp/stats"
got=$(head -n 28 "$tmp/stats" | cut -d' ' -f1 | tr '\n' ' ')
[ "$got" = "$names" ] || fail "unexpected names or order: $got"
head -n 28 "$tmp/stats" | grep -vqE '^[a-z_]+ [0-9.]+ [a-z]' &&
	fail "a line without a unit"
grep -Eq '^load_factor [0-9]+\.[0-9]{3} keys per slot$' "$tmp/stats" ||
	fail "load_factor is not printed with three decimals and its unit"
grep -Eq '^segment_bytes [0-9]+ bytes' "$tmp/stats" || fail "no segment_bytes in bytes"
grep -q '^keys 3 keys$' "$tmp/stats" || fail "no 'keys 3 keys' line"
grep -q '^segment ' "$tmp/stats" || fail "no 'segment ' line"
expect_status 0 "$cellar" info "$cdb"
expect_stdout_file "$tmp/stats"
ok

begin "stats: one segment line per .seg file, with its size"
nsegs=$(sed -n 's/^segments \([0-9]*\) files$/\1/p' "$tmp/stats")
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
grep -q "^segment_bytes $total bytes" "$tmp/stats" ||
	fail "segment_bytes is not the sum of the segment sizes ($total)"
segs=("$cdb"/*.seg)
[ ${#segs[@]} -eq "$nsegs" ] || fail "the number of .seg files is not $nsegs"
ok

begin "stats --json and info --json carry every field, units and the segments"
expect_status 0 "$cellar" stats --json "$cdb"
for f in $names; do
	grep -q "\"$f\":[0-9]" "$out" || fail "no \"$f\" number in the JSON"
	grep -q "\"units\":{.*\"$f\":\"" "$out" || fail "no unit for $f"
done
expect_stdout_has '"segment_list":[{"seq":"'
cp "$out" "$tmp/stats.json"
expect_status 0 "$cellar" info --json "$cdb"
expect_stdout_file "$tmp/stats.json"
ok

begin "stats of a missing store exits 4"
expect_status 4 "$cellar" stats "$tmp/missing"
expect_stdout ""
expect_stderr_prefix "cellar: $tmp/missing: "
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

begin "warm of a missing store exits 4"
expect_status 4 "$cellar" warm "$tmp/missing"
expect_stdout ""
expect_stderr_prefix "cellar: $tmp/missing: "
ok

# ------------------------------------------------------------- progress

# The bar is drawn first at once, then at most ten times a second, and a
# last time when the work is done, before it is erased.
(echo "cellar-dump 1 150000"
 seq 1 150000 | awk '{printf "key%07d\tvalue-%d-with-some-padding-to-make-it-longer-and-longer\n", $1, $1}'
 echo end) >"$tmp/150k.dump"

begin "load, dump, verify, compact, warm and list draw a progress bar on a terminal"
if command -v script >/dev/null 2>&1; then
	script -qec "'$cellar' load '$tmp/prog' -f '$tmp/150k.dump'" /dev/null \
		>"$tmp/tty" 2>&1 || fail "load under script failed"
	grep -qa 'load \[########################\] 100%  [0-9.]*[kM]* records/s  ETA 0:00' "$tmp/tty" ||
		{ cat -v "$tmp/tty"; fail "no progress bar in the terminal output of load"; }
	grep -qa "loaded 150000 records" "$tmp/tty" || fail "load's result is missing"
	script -qec "'$cellar' dump '$tmp/prog' -f '$tmp/prog.dump'" /dev/null \
		>"$tmp/tty" 2>&1 || fail "dump under script failed"
	grep -qa 'dump \[#*\.*\] ' "$tmp/tty" || fail "no progress bar for dump"
	cmp -s "$tmp/prog.dump" "$tmp/150k.dump" || fail "the dump differs"
	script -qec "'$cellar' verify '$tmp/prog'" /dev/null >"$tmp/tty" 2>&1 ||
		fail "verify under script failed"
	grep -qa 'verify \[########################\] 100%  [0-9.]* [KMG]*i*B*/*s*' "$tmp/tty" ||
		fail "no progress bar for verify"
	for c in compact warm list; do
		script -qec "'$cellar' $c '$tmp/prog' >/dev/null" /dev/null >"$tmp/tty" 2>&1 ||
			fail "$c under script failed"
		grep -qa "^.$c.*/s" "$tmp/tty" ||
			{ cat -v "$tmp/tty"; fail "no progress bar for $c"; }
	done
	ok

	begin "no progress bar with --quiet, or when stderr is not a terminal"
	rm -rf "$tmp/prog"
	script -qec "'$cellar' load --quiet '$tmp/prog' -f '$tmp/150k.dump'" /dev/null \
		>"$tmp/tty" 2>&1 || fail "load --quiet under script failed"
	grep -qa '\[#*\.*\]\|records/s' "$tmp/tty" && fail "a progress bar despite --quiet"
	grep -qa "loaded 150000 records" "$tmp/tty" || fail "load's result is missing"
	rm -rf "$tmp/prog"
	script -qec "'$cellar' load '$tmp/prog' -f '$tmp/150k.dump' 2>'$tmp/prog.err'" /dev/null \
		>"$tmp/tty" 2>&1 || fail "load with stderr to a file failed"
	[ ! -s "$tmp/prog.err" ] || fail "progress output on a stderr that is not a terminal"
	grep -qa '\[#*\.*\]' "$tmp/tty" && fail "a progress bar on stdout"
	ok
else
	echo "# SKIP: script(1) is not installed (bsdutils)"
fi

# -------------------------------------------------------------- version

begin "version prints the library version"
expect_status 0 "$cellar" version
[[ $(cat "$out") =~ ^cellar\ [0-9]+\.[0-9]+\.[0-9]+$ ]] ||
	fail "not 'cellar MAJOR.MINOR.PATCH'"
cp "$out" "$tmp/version"
expect_status 0 "$cellar" --version
expect_stdout_file "$tmp/version"
expect_status 0 "$cellar" get --version
expect_stdout_file "$tmp/version"
ok

# ---------------------------------------------------------- usage errors

begin "an unknown command exits 2"
expect_status 2 "$cellar" frobnicate "$db"
expect_stdout ""
expect_stderr_prefix "cellar: usage: unknown command 'frobnicate'"
ok

begin "an unknown option exits 2, names the command's usage, says options go anywhere"
expect_status 2 "$cellar" --frobnicate count "$db"
expect_stderr_prefix "cellar: count: unknown option '--frobnicate'"
expect_stderr_has "usage: cellar count DIR"
expect_stderr_has "(options may go anywhere on the line)"
expect_status 2 "$cellar" count -x "$db"
expect_stderr_prefix "cellar: count: -x does not apply to count"
expect_stderr_has "usage: cellar count DIR"
ok

begin "no command exits 2"
expect_status 2 "$cellar"
ok

all="create put get del count list dump load verify check repair compact stats info warm"
begin "a missing DIR argument exits 2 with the command's usage"
for c in $all; do
	expect_status 2 "$cellar" "$c"
	expect_stdout ""
	expect_stderr_prefix "cellar: $c: missing arguments"
	expect_stderr_has "usage: cellar $c"
done
ok

begin "a missing or extra KEY/VALUE argument exits 2"
expect_status 2 "$cellar" get "$db"
expect_status 2 "$cellar" get "$db" k extra
expect_status 2 "$cellar" del "$db"
expect_status 2 "$cellar" count "$db" extra
expect_stderr_prefix "cellar: count: too many arguments"
ok

begin "--help prints the usage and exits 0"
expect_status 0 "$cellar" --help
head -n 1 "$out" | grep -q '^usage: cellar ' || fail "no usage line"
for c in $all version; do
	grep -q "^  $c" "$out" || fail "$c is not in the help"
done
expect_stdout_has "  3  damaged store"
expect_status 0 "$cellar" help
expect_status 0 "$cellar" -h
ok

begin "--help after every command prints that command's help and exits 0"
for c in $all version; do
	expect_status 0 "$cellar" "$c" --help
	head -n 1 "$out" | grep -q "^usage: cellar $c" || fail "no usage line for $c"
	expect_stdout_has "Exit status:"
	expect_stderr_empty
	expect_status 0 "$cellar" "$c" "$db" -h
	head -n 1 "$out" | grep -q "^usage: cellar $c" || fail "no usage line for $c -h"
	expect_status 0 "$cellar" help "$c"
	head -n 1 "$out" | grep -q "^usage: cellar $c" || fail "no usage line for help $c"
done
ok

begin "the man page covers every command and exit status"
man=$(dirname "$0")/../tools/cellar.1
for c in $all version; do
	grep -q "^\.B[I]* $c\b\|^\.BI \"$c\|^\.B $c$" "$man" || fail "$c is not in the man page"
done
for s in 0 1 2 3 4; do
	grep -q "^\.B $s$" "$man" || fail "exit status $s is not in the man page"
done
ok

echo "# all $n checks passed"
