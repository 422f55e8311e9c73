#!/usr/bin/env bash
# Benchmark of the file module against the standard tools, on one warm
# tree, in one run. Usage (from the repository root):
#
#   bench/file/run.sh [-keep] [-runs N] [-files N] [-dirs N] [-bytes N]
#
# It builds mig-agent, mig, gentree, hashall and hits into $WORK/bin,
# generates the tree under /tmp/migbench (unless one with the same
# parameters is there), warms it into the page cache, then, for each
# question, runs every tool N times interleaved (default 5) and prints the
# best and median wall times, CPU time (user+sys) of the best run, the
# module's peak RSS, and the ratio module/reference. It checks that the
# module finds the same files as the standard tools. The tree is removed at
# the end unless -keep is given.
set -euo pipefail

keep=0 runs=5 files=200000 dirs=12000 bytes=$((2 << 30))
while [ $# -gt 0 ]; do
	case "$1" in
	-keep) keep=1 ;;
	-runs) runs=$2; shift ;;
	-files) files=$2; shift ;;
	-dirs) dirs=$2; shift ;;
	-bytes) bytes=$2; shift ;;
	*) echo "usage: $0 [-keep] [-runs N] [-files N] [-dirs N] [-bytes N]" >&2; exit 2 ;;
	esac
	shift
done

base=/tmp/migbench
tree=$base/tree
manifest=$base/manifest.json
work=$base/work
bin=$work/bin
mkdir -p "$bin"

for tool in go find xargs sha256sum md5sum /usr/bin/time jq; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
if ! command -v rg >/dev/null; then
	echo "installing ripgrep" >&2
	apt-get install -y ripgrep >/dev/null
fi

go build -o "$bin/" ./cmd/mig-agent ./cmd/mig ./bench/file/gentree ./bench/file/hashall ./bench/file/hits

params="files=$files dirs=$dirs bytes=$bytes seed=1"
if [ ! -f "$base/params" ] || [ "$(cat "$base/params")" != "$params" ] || [ ! -d "$tree" ]; then
	rm -rf "$tree" "$manifest" "$base/params"
	need=$((bytes * 14 / 10 / 1024))
	avail=$(df -k --output=avail /tmp | tail -1)
	if [ "$avail" -lt "$need" ]; then
		echo "not enough space on /tmp: $avail KiB free, $need KiB needed" >&2
		exit 1
	fi
	echo "generating $params under $tree" >&2
	"$bin/gentree" -root "$tree" -manifest "$manifest" -files "$files" -dirs "$dirs" -bytes "$bytes"
	echo "$params" >"$base/params"
fi
cleanup() {
	if [ "$keep" = 0 ]; then
		rm -rf "$base"
	fi
}
trap cleanup EXIT

echo "warming the page cache" >&2
find "$tree" -type f -print0 | xargs -0 -P2 cat >/dev/null
find "$tree" -type f -print0 | xargs -0 -P2 cat >/dev/null

export HOME=$work/home MIG_CONFIG=
mkdir -p "$HOME"
cpus=$(nproc)
default_procs=$((cpus / 2 > 0 ? cpus / 2 : 1))

# request PARAMS MAXPROCS: a module request for mig-agent -m file.
request() {
	printf '{"module":"file","parameters":%s,"maxprocs":%s}' "$1" "$2"
}

# measure NAME CMD...: runs CMD with stdin from $stdin (or /dev/null),
# stdout to $work/out.NAME, and appends "wall cpu rss" to $work/t.NAME.
measure() {
	local name=$1
	shift
	/usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" <"${stdin:-/dev/null}" >"$work/out.$name" 2>"$work/err.$name" || true
	awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$work/time" >>"$work/t.$name"
}

# stats NAME: "best median cpu-of-best rss-max"
stats() {
	sort -n "$work/t.$1" | awk '{w[NR]=$1; c[NR]=$2; if ($3 > r) r = $3} END {printf "%.2f %.2f %.2f %d\n", w[1], w[int((NR+1)/2)], c[1], r/1024}'
}

table=$work/table
: >"$table"
fails=0

# row QUESTION NAME LABEL REFNAME: one line of the table.
row() {
	local s ref ratio
	s=$(stats "$2")
	ref=$(stats "$4" | cut -d' ' -f1)
	ratio=$(echo "$s $ref" | awk '{ if ($5 > 0) printf "%.2f", $1 / $5; else print "-" }')
	echo "$s" | awk -v q="$1" -v l="$3" -v r="$ratio" '{printf "| %s | %s | %s | %s | %s | %s | %s |\n", q, l, $1, $2, $3, $4, r}' >>"$table"
}

# same NAME1 NAME2 WHAT: compares two sorted file lists.
same() {
	if cmp -s "$work/hits.$1" "$work/hits.$2"; then
		echo "hits: $3: the same $(wc -l <"$work/hits.$1") files" >&2
	else
		echo "HITS DIFFER: $3" >&2
		diff "$work/hits.$1" "$work/hits.$2" | head -5 >&2
		fails=$((fails + 1))
	fi
}

agent_hits() { "$bin/hits" <"$work/out.$1" >"$work/hits.$1"; }
local_hits() { awk '{print $2}' "$work/out.$1" | sort >"$work/hits.$1"; }

search() { # search JSONFIELDS: parameters of one search over the tree
	printf '{"searches":{"s1":{"paths":["%s"],%s,"options":{"matchlimit":1000000}}}}' "$tree" "$1"
}

# --- questions -------------------------------------------------------------

name_re='^secret-[0-9]+\.key$'
many_re='\.log$'
aws_re='AKIA[0-9A-Z]{16}'
pw_re='(?i)password\s*=\s*hunter2'
sha_list=$(jq -r '.hashes[].sha256' "$manifest" | sort -u)
md5_list=$(jq -r '.hashes[].md5' "$manifest" | sort -u)
# as many values again that are in no file
for i in $(seq 1 20); do
	sha_list+=$'\n'$(printf 'absent-%d' "$i" | sha256sum | cut -c1-64)
	md5_list+=$'\n'$(printf 'absent-%d' "$i" | md5sum | cut -c1-32)
done
json_list() { echo "$1" | jq -R . | jq -sc .; }
flags_list() { echo "$2" | sed "s/^/-$1 /" | tr '\n' ' '; }

request "$(search "\"names\":[$(jq -Rn --arg r "$name_re" '$r')]")" 2 >"$work/q.name"
request "$(search "\"names\":[$(jq -Rn --arg r "$name_re" '$r')]")" "$default_procs" >"$work/q.name1"
request "$(search "\"names\":[$(jq -Rn --arg r "$many_re" '$r')]")" 2 >"$work/q.many"
request "$(search "\"contents\":[$(jq -Rn --arg r "$aws_re" '$r')]")" 2 >"$work/q.aws"
request "$(search "\"contents\":[$(jq -Rn --arg r "$aws_re" '$r')]")" "$default_procs" >"$work/q.aws1"
request "$(search "\"contents\":[$(jq -Rn --arg r "$pw_re" '$r')]")" 2 >"$work/q.pw"
request "$(search "\"sha256\":$(json_list "$sha_list")")" 2 >"$work/q.sha"
request "$(search "\"sha256\":$(json_list "$sha_list")")" "$default_procs" >"$work/q.sha1"
request "$(search "\"md5\":$(json_list "$md5_list")")" 2 >"$work/q.md5"
echo "$sha_list" >"$work/sha.list"
echo "$md5_list" >"$work/md5.list"
sha_flags=$(flags_list sha256 "$sha_list")
md5_flags=$(flags_list md5 "$md5_list")

rm -f "$work"/t.*
for i in $(seq 1 "$runs"); do
	echo "run $i of $runs" >&2
	measure find.name find "$tree" -regextype posix-extended -regex '.*/secret-[0-9]+\.key'
	stdin=$work/q.name measure agent.name "$bin/mig-agent" -m file
	stdin=$work/q.name1 measure agent1.name "$bin/mig-agent" -m file
	measure mig.name "$bin/mig" file -t local -path "$tree" -name "$name_re" -matchlimit 1000000

	measure find.many find "$tree" -regextype posix-extended -regex '.*\.log'
	stdin=$work/q.many measure agent.many "$bin/mig-agent" -m file

	measure rg.aws rg -l "$aws_re" "$tree"
	measure rguuu.aws rg -l -uuu "$aws_re" "$tree"
	stdin=$work/q.aws measure agent.aws "$bin/mig-agent" -m file
	stdin=$work/q.aws1 measure agent1.aws "$bin/mig-agent" -m file
	measure mig.aws "$bin/mig" file -t local -path "$tree" -content "$aws_re" -matchlimit 1000000

	measure rg.pw rg -l "$pw_re" "$tree"
	stdin=$work/q.pw measure agent.pw "$bin/mig-agent" -m file
	measure mig.pw "$bin/mig" file -t local -path "$tree" -content "$pw_re" -matchlimit 1000000

	measure hashall.sha "$bin/hashall" -algo sha256 -p 2 "$tree"
	measure xargs.sha sh -c "find '$tree' -type f -print0 | xargs -0 -P2 -n 500 sha256sum"
	stdin=$work/q.sha measure agent.sha "$bin/mig-agent" -m file
	stdin=$work/q.sha1 measure agent1.sha "$bin/mig-agent" -m file
	# shellcheck disable=SC2086
	measure mig.sha "$bin/mig" file -t local -path "$tree" $sha_flags -matchlimit 1000000

	measure hashall.md5 "$bin/hashall" -algo md5 -p 2 "$tree"
	measure xargs.md5 sh -c "find '$tree' -type f -print0 | xargs -0 -P2 -n 500 md5sum"
	stdin=$work/q.md5 measure agent.md5 "$bin/mig-agent" -m file
	# shellcheck disable=SC2086
	measure mig.md5 "$bin/mig" file -t local -path "$tree" $md5_flags -matchlimit 1000000
done

# --- same hits ---------------------------------------------------------------

sort "$work/out.find.name" >"$work/hits.find.name"
agent_hits agent.name
local_hits mig.name
same find.name agent.name "name regex, find vs mig-agent"
same find.name mig.name "name regex, find vs mig -t local"
many_find=$(wc -l <"$work/out.find.many")
many_agent=$("$bin/hits" -stats <"$work/out.agent.many" | sed -n 's/.*"totalhits":\([0-9]*\).*/\1/p')
if [ "$many_find" = "$many_agent" ]; then
	echo "hits: name regex, many matches: find and mig-agent both count $many_find" >&2
else
	echo "HITS DIFFER: many matches: find $many_find, mig-agent $many_agent" >&2
	fails=$((fails + 1))
fi
sort "$work/out.rg.aws" >"$work/hits.rg.aws"
agent_hits agent.aws
local_hits mig.aws
same rg.aws agent.aws "content regex, rg -l vs mig-agent"
same rg.aws mig.aws "content regex, rg -l vs mig -t local"
sort "$work/out.rg.pw" >"$work/hits.rg.pw"
agent_hits agent.pw
same rg.pw agent.pw "content regex (?i), rg -l vs mig-agent"
grep -F -f "$work/sha.list" "$work/out.xargs.sha" | awk '{print $2}' | sort >"$work/hits.xargs.sha"
agent_hits agent.sha
local_hits mig.sha
same xargs.sha agent.sha "sha256 list, sha256sum vs mig-agent"
same xargs.sha mig.sha "sha256 list, sha256sum vs mig -t local"
grep -F -f "$work/md5.list" "$work/out.xargs.md5" | awk '{print $2}' | sort >"$work/hits.xargs.md5"
agent_hits agent.md5
same xargs.md5 agent.md5 "md5 list, md5sum vs mig-agent"

# --- table -------------------------------------------------------------------

row "name regex" find.name "find -regextype posix-extended -regex" find.name
row "name regex" agent.name "mig-agent -m file, maxprocs 2" find.name
row "name regex" agent1.name "mig-agent -m file, maxprocs $default_procs (agent default)" find.name
row "name regex" mig.name "mig file -t local" find.name
row "name regex, $many_find matches" find.many "find -regextype posix-extended -regex" find.many
row "name regex, $many_find matches" agent.many "mig-agent -m file, maxprocs 2" find.many
row "content regex" rg.aws "rg -l" rg.aws
row "content regex" rguuu.aws "rg -l -uuu (binary files too)" rg.aws
row "content regex" agent.aws "mig-agent -m file, maxprocs 2" rg.aws
row "content regex" agent1.aws "mig-agent -m file, maxprocs $default_procs (agent default)" rg.aws
row "content regex" mig.aws "mig file -t local" rg.aws
row "content regex (?i)" rg.pw "rg -l" rg.pw
row "content regex (?i)" agent.pw "mig-agent -m file, maxprocs 2" rg.pw
row "content regex (?i)" mig.pw "mig file -t local" rg.pw
row "sha256 list" hashall.sha "hashall -algo sha256 -p 2 (physical limit)" hashall.sha
row "sha256 list" xargs.sha "find -print0 | xargs -0 -P2 sha256sum" hashall.sha
row "sha256 list" agent.sha "mig-agent -m file, maxprocs 2" hashall.sha
row "sha256 list" agent1.sha "mig-agent -m file, maxprocs $default_procs (agent default)" hashall.sha
row "sha256 list" mig.sha "mig file -t local" hashall.sha
row "md5 list" hashall.md5 "hashall -algo md5 -p 2 (physical limit)" hashall.md5
row "md5 list" xargs.md5 "find -print0 | xargs -0 -P2 md5sum" hashall.md5
row "md5 list" agent.md5 "mig-agent -m file, maxprocs 2" hashall.md5
row "md5 list" mig.md5 "mig file -t local" hashall.md5

echo
echo "tree: $(jq -r '"\(.files) files, \(.dirs) directories, \(.bytes) bytes"' "$manifest"); $runs runs each, interleaved; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| question | tool | best s | median s | CPU s (best run) | peak RSS MiB | ratio to reference (best) |"
echo "|---|---|---|---|---|---|---|"
cat "$table"
if [ "$fails" -gt 0 ]; then
	echo "$fails hit comparisons failed" >&2
	exit 1
fi
