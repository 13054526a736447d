#!/usr/bin/env bash
# tests/test_netns.sh — the data path across three hosts: network
# namespaces joined by a bridge (in a fourth, private namespace), one
# strata-server in each of two hosts, test_remote (tcp) in the third.
#   test_netns.sh SERVER_BIN TEST_REMOTE_BIN
# Needs root and `ip netns`; exits 77 (skip) without them. Traffic stays
# inside the namespaces it creates; everything is removed on exit.
set -u
SERVER=$1
CLIENT=$2
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
  echo "skip: needs root and iproute2"; exit 77
fi
P=st$$
HUB=${P}h
cleanup() {
  for pid in ${PIDS:-}; do kill -TERM "$pid" 2>/dev/null; done
  sleep 0.5
  for pid in ${PIDS:-}; do kill -KILL "$pid" 2>/dev/null; done
  for n in a b c; do ip netns del ${P}$n 2>/dev/null; done
  ip netns del $HUB 2>/dev/null
  rm -rf "$DIR"
}
DIR=$(mktemp -d /tmp/strata-netns-XXXXXX)
trap cleanup EXIT
ip netns add $HUB || { echo "skip: cannot create namespaces"; exit 77; }
ip -n $HUB link add br0 type bridge && ip -n $HUB link set br0 up || { echo "skip: no bridge"; exit 77; }
i=1
for n in a b c; do
  ip netns add ${P}$n
  ip link add v$P$n type veth peer name eth0 netns ${P}$n || { echo "skip: no veth"; exit 77; }
  ip link set v$P$n netns $HUB
  ip -n $HUB link set v$P$n master br0 up
  ip -n ${P}$n addr add 10.77.0.$i/24 dev eth0
  ip -n ${P}$n link set eth0 up
  ip -n ${P}$n link set lo up
  i=$((i+1))
done
export UCX_TLS=tcp,self UCX_NET_DEVICES=eth0 UCX_WARN_UNUSED_ENV_VARS=n
PIDS=""
for k in 0 1; do
  n=$([ $k = 0 ] && echo a || echo b)
  ip netns exec ${P}$n "$SERVER" --listen 10.77.0.$((k+1)):13337 --index $k --nservers 2 \
      --secret test-secret --initial-buckets 64 >"$DIR/server.$k.log" 2>&1 &
  PIDS="$PIDS $!"
done
for t in $(seq 100); do
  grep -q listening "$DIR/server.0.log" 2>/dev/null && grep -q listening "$DIR/server.1.log" 2>/dev/null && break
  sleep 0.1
done
ip netns exec ${P}c env STRATA_TEST_SERVERS=10.77.0.1:13337,10.77.0.2:13337 "$CLIENT" tcp
rc=$?
if [ $rc -ne 0 ]; then
  echo "test_remote across namespaces failed ($rc); server logs:"; tail -5 "$DIR"/server.*.log
  exit 1
fi
echo "3 hosts (namespaces): 2 servers on 10.77.0.1-2, client on 10.77.0.3: pass"
