#!/bin/bash
# Benchmark of BENCHMARKS.md ("netstat across network namespaces"); run as root from the
# repository root: internal/module/netstat/testdata/bench-namespaces.sh
# Time and peak memory of "who is connected to 127.0.0.1, in every network namespace":
# mig netstat -namespaces against ss -tanp (own namespace) and ss -tanp in each namespace via nsenter.
set -e
N=${N:-20}; RUNS=${RUNS:-20}
go build -o /tmp/mig-bench ./cmd/mig
pids=()
for i in $(seq $N); do
  ip netns add migbench$i; ip -n migbench$i link set lo up
  ip netns exec migbench$i sleep 600 & pids+=($!)
done
trap 'kill ${pids[@]} 2>/dev/null; for i in $(seq $N); do ip netns del migbench$i; done' EXIT
sleep 1
measure() { # name, command...
  local name=$1; shift
  : > /tmp/migbench.times
  for r in $(seq $RUNS); do
    /usr/bin/time -a -o /tmp/migbench.times -f '%e %M' "$@" >/dev/null 2>&1
  done
  awk -v n="$name" '{t+=$1; if ($2>m) m=$2} END {printf "%-58s %7.1f ms %7d KB max RSS\n", n, 1000*t/NR, m}' /tmp/migbench.times
}
nsloop='for p in $(for d in /proc/[0-9]*; do echo "$(readlink $d/ns/net) ${d#/proc/}"; done 2>/dev/null | sort -u -k1,1 | cut -d" " -f2); do nsenter -t $p -n ss -tanp dst 127.0.0.1; done'
measure "mig netstat -ci 127.0.0.1 (own namespace)"              /tmp/mig-bench netstat -t local -ci 127.0.0.1
measure "ss -tanp dst 127.0.0.1 (own namespace)"                 ss -tanp dst 127.0.0.1
measure "mig netstat -ci 127.0.0.1 -namespaces"                  /tmp/mig-bench netstat -t local -ci 127.0.0.1 -namespaces
measure "nsenter + ss -tanp dst 127.0.0.1, once per namespace"   bash -c "$nsloop"
echo "namespaces: $(for d in /proc/[0-9]*; do readlink $d/ns/net; done 2>/dev/null | sort -u | wc -l), processes: $(ls -d /proc/[0-9]* | wc -l), tcp sockets: $(ss -tan | tail -n +2 | wc -l)"
