#!/usr/bin/env bash
# Installs the Debian 12 packages vkquant needs to build, test and run on
# lavapipe (Mesa's CPU Vulkan driver). Running it twice is harmless.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config \
  libvulkan-dev libvulkan-volk-dev glslang-tools spirv-tools \
  mesa-vulkan-drivers vulkan-validationlayers vulkan-tools \
  libglm-dev libgtest-dev libgmock-dev libeigen3-dev \
  nlohmann-json3-dev libcli11-dev libfmt-dev
