#!/bin/bash
# make bench, network part: link-up -> bound time of build/init against a local dnsmasq
# (in network namespaces imnb-srv / imnb-cli joined by veth, 10.213.17.0/24), as the
# client itself measures it ("bound N ms after carrier"), over RUNS fresh leases.
# Budget: the median within 100 ms. dnsmasq runs with --no-ping: its ping check of a new
# address would add up to 3 s of server time, which is not the client's.
set -euo pipefail
init=${1:-build/init}
runs=${RUNS:-20}
budget_ms=100
dir=$(mktemp -d /tmp/imnb.XXXXXX)
cleanup() {
    [[ -f $dir/pid ]] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    ip netns del imnb-cli 2>/dev/null || true
    ip netns del imnb-srv 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ip netns del imnb-cli 2>/dev/null || true
ip netns del imnb-srv 2>/dev/null || true
ip netns add imnb-srv
ip netns add imnb-cli
ip link add imnb0 type veth peer name imnb1
ip link set imnb0 netns imnb-srv
ip link set imnb1 netns imnb-cli
ip -n imnb-srv addr add 10.213.17.1/24 dev imnb0
ip -n imnb-srv link set imnb0 up
ip netns exec imnb-srv dnsmasq --conf-file=/dev/null --interface=imnb0 --bind-interfaces \
    --except-interface=lo --port=0 --no-ping --dhcp-range=10.213.17.50,10.213.17.250,255.255.255.0,2m \
    --dhcp-option=option:router,10.213.17.1 --dhcp-leasefile="$dir/leases" --pid-file="$dir/pid"
for _ in $(seq 50); do [[ -s $dir/pid ]] && break; sleep 0.1; done
times=()
for i in $(seq "$runs"); do
    # A fresh client each time: a new MAC, link down, no address: a first boot's lease.
    ip -n imnb-cli link set imnb1 down
    ip -n imnb-cli addr flush dev imnb1
    ip -n imnb-cli link set imnb1 address "02:00:0a:d5:11:$(printf %02x "$i")"
    out=$(ip netns exec imnb-cli "$init" dhcp imnb1 --timeout 10 --release)
    ms=$(sed -n 's/^  bound *\([0-9.]*\) ms after carrier$/\1/p' <<<"$out")
    [[ -n $ms ]] || { echo "bench: no bound time in: $out" >&2; exit 1; }
    times+=("$ms")
done
sorted=($(printf '%s\n' "${times[@]}" | sort -g))
median=${sorted[$(( runs / 2 ))]}
echo "dhcp: link-up -> bound over $runs fresh leases from dnsmasq: min ${sorted[0]} ms, median $median ms, max ${sorted[$(( runs - 1 ))]} ms (budget $budget_ms ms)"
if awk -v m="$median" -v b="$budget_ms" 'BEGIN { exit !(m > b) }'; then
    echo "bench: DHCP median $median ms is over the $budget_ms ms budget" >&2
    exit 1
fi
