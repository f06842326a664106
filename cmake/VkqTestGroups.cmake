# One CTest test per group of GoogleTest tests, instead of one per test
# (gtest_discover_tests). Every test process pays for a Vulkan instance with
# the validation layer and a device: ~0.7 s on lavapipe, ~3 s under ASan, which
# for ~1,750 tests was most of the suite's time. A group is one test suite, or
# a GoogleTest shard of it when it holds more than MAX_TESTS tests
# (GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX, which deal the suite's tests round
# robin). Names: `Suite` or `Suite[2/3]`; `ctest -R Suite` still selects a
# suite, and the binary's own --gtest_filter selects one test.
#
# vkq_test_groups(TARGET MAX_TESTS n TIMEOUT seconds) lists the tests after each
# build of TARGET (--gtest_list_tests) and writes the CTest file that the test
# directory includes.
function(vkq_test_groups target)
  cmake_parse_arguments(ARG "" "MAX_TESTS;TIMEOUT" "" ${ARGN})
  set(groups "${CMAKE_CURRENT_BINARY_DIR}/${target}_groups.cmake")
  set(include "${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake")
  add_custom_command(TARGET ${target} POST_BUILD BYPRODUCTS "${groups}"
    COMMAND "${CMAKE_COMMAND}" -DEXE=$<TARGET_FILE:${target}> -DOUT=${groups} -DMAX_TESTS=${ARG_MAX_TESTS}
            -DTIMEOUT=${ARG_TIMEOUT} -DWORKDIR=${CMAKE_CURRENT_BINARY_DIR} -P "${PROJECT_SOURCE_DIR}/cmake/VkqTestGroupsList.cmake"
    VERBATIM)
  file(WRITE "${include}"
    "if(EXISTS \"${groups}\")\n  include(\"${groups}\")\nelse()\n"
    "  add_test(${target}_NOT_BUILT \"${target}_NOT_BUILT\")\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include}")
endfunction()
