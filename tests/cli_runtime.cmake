# CLI tests of issue 19: see tests/CMakeLists.txt. The runtime's environment
# and a real fence timeout, as a user meets them.

# A 1 ms fence timeout against a real model pass: the late work is waited for
# (bounded) before anything it uses is freed, then one line and exit 1 (was:
# "double free or corruption", exit 134; calibrate and gauge segfaulted).
# calibrate and gauge capture on the device here (--capture device): on
# lavapipe their default captures on the host, with no fence to wait for.
set(timeout_env "ENVS=VKQ_FENCE_TIMEOUT_MS=1")
set(timeout_line "vkWaitForFences failed: VK_TIMEOUT .*fence timeout of 1 ms")
foreach(case
    "run_fence_timeout|run;--prompt;And the LORD said;-n;32"
    "ppl_fence_timeout|ppl;${PROJECT_SOURCE_DIR}/models/kjv-llama;--text;${PROJECT_SOURCE_DIR}/models/kjv-calib.txt;--chunks;1"
    "calibrate_fence_timeout|calibrate;${PROJECT_SOURCE_DIR}/models/kjv-llama;--text;${PROJECT_SOURCE_DIR}/models/kjv-calib.txt;--tokens;256;--capture;device;-o;${CMAKE_CURRENT_BINARY_DIR}/fence_timeout.vkq.safetensors"
    "gauge_fence_timeout|gauge;${PROJECT_SOURCE_DIR}/models/kjv-llama;--tokens;256;--capture;device")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 name)
  list(SUBLIST parts 1 -1 args)
  add_test(NAME cli.${name} COMMAND ${CMAKE_COMMAND} -DVKQ=$<TARGET_FILE:vkquant> -DEXPECT=1 "-DARGS=${args}"
           "-DMATCH=${timeout_line}" "-D${timeout_env}" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
endforeach()

# VKQ_FENCE_TIMEOUT_MS is parsed strictly: a bad value is refused by name,
# exit 2, like a bad flag (was: taken as ~0 ms, or -1 as no bound). The empty
# value is in the gtest FenceTimeoutEnv.StrictWholeMilliseconds (CMake cannot
# set an empty environment variable).
foreach(bad abc 1e20 -1 0)
  add_test(NAME cli.fence_timeout_env_${bad} COMMAND ${CMAKE_COMMAND} -DVKQ=$<TARGET_FILE:vkquant> -DEXPECT=2
           "-DARGS=run;-n;2" "-DMATCH=vkquant: VKQ_FENCE_TIMEOUT_MS=${bad}: expected a whole number of milliseconds from 1 to 86400000"
           "-DENVS=VKQ_FENCE_TIMEOUT_MS=${bad}" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
endforeach()

# A driver manifest that is not JSON, or a directory: the loader answers
# VK_ERROR_OUT_OF_HOST_MEMORY; it is "no usable driver", exit 3 (was exit 1).
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/bad_manifests/icd.json "this is not JSON\n")
foreach(kind file dir)
  set(manifest ${CMAKE_CURRENT_BINARY_DIR}/bad_manifests)
  if(kind STREQUAL "file")
    set(manifest ${manifest}/icd.json)
  endif()
  add_test(NAME cli.driver_manifest_${kind} COMMAND ${CMAKE_COMMAND} -DVKQ=$<TARGET_FILE:vkquant> -DEXPECT=3
           "-DARGS=devices" "-DMATCH=vkquant: no usable Vulkan driver .*VK_DRIVER_FILES=${manifest}\n"
           "-DENVS=VK_DRIVER_FILES=${manifest};VK_ICD_FILENAMES=${manifest}" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
endforeach()

# Sampling flags: NaN, a zero nucleus and seeds outside 64 bits are usage
# errors, exit 2 (were exit 1, or silently saturated / wrapped).
vkq_expect_error(run_temp_nan 2 "--temp: 'nan' is not a number" run -n 1 --temp nan)
vkq_expect_error(run_top_p_nan 2 "--top-p: 'nan' is not a number" run -n 1 --top-p nan)
vkq_expect_error(run_top_p_zero 2 "--top-p: '0' is not in \\(0, 1\\]" run -n 1 --top-p 0)
vkq_expect_error(run_seed_overflow 2 "--seed: '18446744073709551616' is not a whole number" run -n 1 --seed 18446744073709551616)
vkq_expect_error(run_seed_negative 2 "--seed: '-1' is not a whole number" run -n 1 --seed -1)
add_test(NAME cli.run_seed_max COMMAND vkquant run -n 2 --seed 18446744073709551615)
