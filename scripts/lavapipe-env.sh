# Source this to run vkquant on Mesa lavapipe (Vulkan on the CPU):
#   . scripts/lavapipe-env.sh
export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
export VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -w "${XDG_RUNTIME_DIR:-/nonexistent}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d /tmp/vkquant-xdg.XXXXXX)
  export XDG_RUNTIME_DIR
fi
