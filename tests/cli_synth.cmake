# vkq-synth (tools/synth): generated real-shaped models pass `vkquant info`.
# tools/CMakeLists.txt does not add tools/synth yet; build it from here until it does.
if(NOT TARGET vkq-synth)
  add_subdirectory(${PROJECT_SOURCE_DIR}/tools/synth ${PROJECT_BINARY_DIR}/tools/synth)
endif()
