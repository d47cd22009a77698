#!/usr/bin/env bash
# CTest: scripts/netbed measure for one profile, briefly, and checks that the
# shaping and the delay took effect: RTT through the proxy >= the profile's
# RTT, throughput <= 1.1x the shaped rate (and not absurdly below it), and the
# direct path undelayed. Exits 77 (skipped) unless root with working
# network namespaces and tbf.
# Usage: tests/netbed_test.sh [PROFILE]   (BLINDFOLD_BIN: the binary to test)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
profile="${1:-wan}"
export BLINDFOLD_BIN="${BLINDFOLD_BIN:-$root/build/blindfold}"
# A prefix of our own, so parallel runs and a bed someone has up never meet.
export NETBED_PREFIX="bft$$-"

skip() {
  echo "netbed_test: SKIPPED: $*"
  exit 77
}
[[ "$(id -u)" == 0 ]] || skip "needs root"
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then skip "no iproute2 (ip, tc)"; fi
chk="${NETBED_PREFIX}skip"
ip netns add "$chk" 2>/dev/null || skip "'ip netns add' does not work here"
tbf_ok=1
ip netns exec "$chk" tc qdisc add dev lo root tbf rate 10mbit burst 64kb latency 10ms \
  2>/dev/null || tbf_ok=0
ip netns del "$chk"
((tbf_ok)) || skip "no tbf qdisc"

# Beds of earlier runs of this test that were killed (CTest's timeout sends
# SIGKILL, which no trap sees): their prefix names a process that is gone.
for stale in $(ip netns list | awk '{print $1}' | sed -nE 's/^bft([0-9]+)-hub$/\1/p'); do
  if ! kill -0 "$stale" 2>/dev/null; then
    NETBED_PREFIX="bft$stale-" "$root/scripts/netbed" down || true
  fi
done

case "$profile" in
  wan) bytes=8MiB ;;    # 0.7 s at 100 Mbit/s
  lan) bytes=64MiB ;;   # 0.5 s at 1 Gbit/s
  *) bytes=16MiB ;;
esac
out="$(NETBED_BYTES="$bytes" NETBED_PINGS=20 timeout 100 "$root/scripts/netbed" measure "$profile")"
echo "$out"

/usr/bin/python3 - "$out" <<'EOF'
import json, sys
rows = {r["path"]: r for r in map(json.loads, sys.argv[1].splitlines())}
bad = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        bad.append(what)
direct, proxied = rows["direct"], rows["proxied"]
rate, rtt = proxied["target_mbit"], proxied["target_rtt_us"]
check(proxied["rtt_us"]["min"] >= rtt,
      f"proxied RTT min {proxied['rtt_us']['min']:.0f} us >= target {rtt} us")
check(direct["rtt_us"]["median"] < max(rtt / 2, 1000),
      f"direct RTT median {direct['rtt_us']['median']:.0f} us is not delayed")
for r in (direct, proxied):
    if rate > 0:
        check(r["mbit_s"] <= 1.1 * rate,
              f"{r['path']} throughput {r['mbit_s']:.1f} Mbit/s <= 1.1 x {rate}")
        check(r["mbit_s"] >= 0.3 * rate,
              f"{r['path']} throughput {r['mbit_s']:.1f} Mbit/s >= 0.3 x {rate} (sanity)")
sys.exit(1 if bad else 0)
EOF
