#!/usr/bin/env bash
# Build, offline, the images the container tests run (no registry is needed
# or used: every base is made here from this machine's files):
#
#   pg-mcp-fleet-runtime-base:TAG  a stand-in for distroless/cc: the glibc and
#                                  libgcc_s files `ldd` lists for the three
#                                  binaries, CA certificates, /etc/passwd and
#                                  /etc/group with nonroot (65532), /tmp
#   pg-mcp-fleet:TAG               the Dockerfile's final stage (user, /data
#                                  owned by 65532, PATH, CMD) on that base,
#                                  with BINARIES=prebuilt: target/release/*
#                                  copied in (cargo build --release first)
#   pg-mcp-fleet-nginx:TAG         Debian's /usr/sbin/nginx, its ldd libraries,
#                                  mime.types and an `nginx` user: what
#                                  compose/docker-compose.yml runs as nginx
#   pg-mcp-fleet-pause:TAG         the Pod's network-namespace holder
#                                  (`sleep infinity`, run with --init)
#
# Each image is built with BuildKit from a staged context under
# target/container-images/, so an unchanged input is a cache hit and a
# rebuild of the binaries only rebuilds the last layers of pg-mcp-fleet.
#
# Usage: scripts/container-images.sh           (TAG: $IMAGE_TAG or "test")
# Needs: a running Docker engine; BuildKit through `docker buildx` or a client
# with it built in (Debian's docker.io 20.10: /usr/bin/docker); the release
# binaries in $MCP_RELEASE_DIR (default target/release); nginx (nginx-light)
# and coreutils on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TAG=${IMAGE_TAG:-test}
RELEASE=${MCP_RELEASE_DIR:-$ROOT/target/release}
STAGE=$ROOT/target/container-images
BINS=(mcp-server kb-init kb-sync-sidecar)
NGINX=${NGINX_BIN:-/usr/sbin/nginx}
SLEEP=$(command -v sleep)

die() { printf 'container-images: %s\n' "$*" >&2; exit 1; }

for b in "${BINS[@]}"; do
  [ -x "$RELEASE/$b" ] || die "$RELEASE/$b is missing: run cargo build --release --locked -p mcp-server -p kb-init -p kb-sync-sidecar"
done
[ -x "$NGINX" ] || die "$NGINX is missing: apt-get install nginx-light"
docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/test.sh starts one)"

# docker build with BuildKit. The Dockerfile needs it (RUN --mount, and only
# the stages the target needs are built). Newer clients delegate it to the
# buildx plugin; the 20.10 client has it built in.
buildkit_build() {
  if docker buildx version >/dev/null 2>&1; then
    docker buildx build --load "$@"
    return
  fi
  local cli
  for cli in docker /usr/bin/docker; do
    if command -v "$cli" >/dev/null && "$cli" version --format '{{.Client.Version}}' 2>/dev/null | grep -qE '^(1[89]|2[0-2])\.'; then
      DOCKER_BUILDKIT=1 "$cli" build "$@"
      return
    fi
  done
  die "no docker client can build with BuildKit: install the buildx plugin, or Debian's docker.io (its /usr/bin/docker)"
}

# add_with_libs ROOTFS FILE...: each FILE at its own path, plus every shared
# library `ldd` lists for it, under ROOTFS. Library directories are resolved
# (Debian's /lib is a link to usr/lib), and the top-level links of this
# machine (lib -> usr/lib, lib64 -> usr/lib64) are made again in ROOTFS, so
# the loader path written in the binary (/lib64/ld-linux-x86-64.so.2) works.
add_with_libs() {
  local rootfs=$1 f lib dir
  shift
  for f in "$@"; do
    install -D -m 0755 "$f" "$rootfs$f"
    while read -r lib; do
      [ -n "$lib" ] || continue
      dir=$(realpath "$(dirname "$lib")")
      install -D -m 0755 "$(realpath "$lib")" "$rootfs$dir/$(basename "$lib")"
    done < <(ldd "$f" | awk '/=> \// { print $3 } /^\t\// { print $1 }')
  done
  for link in lib lib64 bin sbin; do
    if [ -L "/$link" ] && [ ! -e "$rootfs/$link" ] && [ ! -L "$rootfs/$link" ]; then
      ln -s "$(readlink "/$link")" "$rootfs/$link"
    fi
  done
}

# fresh DIR: an empty staging directory.
fresh() { rm -rf "$1" && mkdir -p "$1"; }

# FROM scratch + COPY of a staged root filesystem: a cache hit while the files
# are the same.
rootfs_image() {
  local name=$1 dir=$2
  shift 2
  {
    echo "FROM scratch"
    echo "COPY rootfs/ /"
    printf '%s\n' "$@"
  } > "$dir/Dockerfile"
  buildkit_build -q -t "$name" "$dir" >/dev/null
  printf '  %-36s %s\n' "$name" "$(docker image inspect -f '{{.Size}}' "$name" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
}

echo "building images (tag $TAG) from $RELEASE and $NGINX"

# ---------------------------------------------------------------------------
# Runtime base: what distroless/cc-debian12:nonroot provides to the binaries.
base=$STAGE/runtime-base
fresh "$base/rootfs"
r=$base/rootfs
for b in "${BINS[@]}"; do
  add_with_libs "$r" "$RELEASE/$b"
  rm -f "$r$RELEASE/$b"          # only the libraries: the binaries come later
done
find "$r" -depth -type d -empty -delete
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
install -d -m 1777 "$r/tmp"
install -d -m 0755 "$r/home/nonroot"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$r/etc/passwd"
printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' > "$r/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > "$r/etc/nsswitch.conf"
rootfs_image "pg-mcp-fleet-runtime-base:$TAG" "$base" 'USER 65532:65532'

# ---------------------------------------------------------------------------
# The product image: the Dockerfile itself, its final stage on that base.
ctx=$STAGE/prebuilt
fresh "$ctx/target/release"
for b in "${BINS[@]}"; do
  ln "$RELEASE/$b" "$ctx/target/release/$b" 2>/dev/null || cp -p "$RELEASE/$b" "$ctx/target/release/$b"
done
buildkit_build -q -f "$ROOT/Dockerfile" \
  --build-arg BINARIES=prebuilt \
  --build-arg "RUNTIME_BASE=pg-mcp-fleet-runtime-base:$TAG" \
  --build-arg "VERSION=$("$RELEASE/mcp-server" --version | awk '{ print $2 }')" \
  -t "pg-mcp-fleet:$TAG" "$ctx" >/dev/null
printf '  %-36s %s\n' "pg-mcp-fleet:$TAG" "$(docker image inspect -f '{{.Size}}' "pg-mcp-fleet:$TAG" | awk '{ printf "%.1f MB", $1 / 1e6 }')"

# ---------------------------------------------------------------------------
# nginx: Debian's binary, as compose/docker-compose.yml runs it (`nginx -c
# /etc/nginx/mcp/nginx.conf`, `user nginx;`, pid in /var/run).
ng=$STAGE/nginx
fresh "$ng/rootfs"
r=$ng/rootfs
add_with_libs "$r" "$NGINX"
install -D -m 0644 /etc/nginx/mime.types "$r/etc/nginx/mime.types"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nginx:x:101:101:nginx:/nonexistent:/sbin/nologin' > "$r/etc/passwd"
printf '%s\n' 'root:x:0:' 'nginx:x:101:' > "$r/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > "$r/etc/nsswitch.conf"
install -d -m 0755 "$r/var/lib/nginx" "$r/var/log/nginx" "$r/run"
install -d -m 1777 "$r/tmp"
ln -s /run "$r/var/run"
rootfs_image "pg-mcp-fleet-nginx:$TAG" "$ng" \
  'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
  'STOPSIGNAL SIGQUIT' \
  'EXPOSE 80' \
  'CMD ["nginx", "-g", "daemon off;"]'

# ---------------------------------------------------------------------------
# pause: holds a Pod's network namespace (run it with --init).
pz=$STAGE/pause
fresh "$pz/rootfs"
add_with_libs "$pz/rootfs" "$SLEEP"
rootfs_image "pg-mcp-fleet-pause:$TAG" "$pz" \
  "ENTRYPOINT [\"$SLEEP\", \"infinity\"]" \
  'USER 65535:65535'
