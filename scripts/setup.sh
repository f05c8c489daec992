#!/usr/bin/env bash
# Installs every build and runtime dependency from Debian packages (idempotent).
# Runs apt-get as root, through sudo otherwise.
set -euo pipefail
PKGS=(build-essential cmake pkg-config
      libtorch-dev libgloo-dev libopenblas0-pthread
      libzmq3-dev cppzmq-dev
      libflatbuffers-dev flatbuffers-compiler
      libopencv-dev libyaml-cpp-dev
      libgtest-dev libgmock-dev
      nlohmann-json3-dev libcli11-dev libxxhash-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
else
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# LibTorch trains ~27x slower on the reference BLAS: make sure OpenBLAS is selected.
if command -v update-alternatives >/dev/null; then
  cur=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  case "$cur" in
    *openblas*) ;;
    *) SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
       $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu \
         /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 || true ;;
  esac
fi
