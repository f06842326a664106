# CLI tests of issue 19: see tests/CMakeLists.txt.

# Output files are opened before the work (tools/cmd_*.cpp, AtomicFile::open):
# an unwritable -o, --json or --html fails at once, with one line naming the
# flag, the path and the problem, and nothing written. These run with no
# Vulkan driver, so a check made only after the work (which needs a device)
# would report the missing device instead and fail the MATCH; the timeout
# guards the same order where a driver is found anyway.
set(vkq_no_driver "VK_DRIVER_FILES=/nonexistent;VK_ICD_FILENAMES=/nonexistent")
function(vkq_expect_early name regex)
  add_test(NAME cli.${name} COMMAND ${CMAKE_COMMAND} -DVKQ=$<TARGET_FILE:vkquant> -DEXPECT=1 "-DARGS=${ARGN}"
           "-DMATCH=${regex}" "-DENVS=${vkq_no_driver}" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
  set_tests_properties(cli.${name} PROPERTIES TIMEOUT 20)
endfunction()

# sysfs takes no new file, from root either: EACCES, or EROFS where a
# container mounts it read-only.
set(vkq_sys_out /sys/kernel/vkq-test-out)
set(vkq_cannot "cannot create a temporary file beside it: (Read-only file system|Permission denied|Operation not permitted)")
set(vkq_calibrate calibrate ${models}/kjv-llama --text ${CMAKE_CURRENT_SOURCE_DIR}/data/ppl-sample.txt)
set(vkq_bench bench --quick --filter roofline)
set(vkq_gauge gauge ${models}/kjv-llama --no-mlp --tokens 64)

vkq_expect_early(calibrate_out_missing_dir
  "^vkquant: -o /nonexistent/x\\.vkq\\.safetensors: directory /nonexistent does not exist\n$"
  ${vkq_calibrate} -o /nonexistent/x.vkq.safetensors)
vkq_expect_early(calibrate_out_is_directory "^vkquant: -o [^\n]*/tests: is a directory\n$"
  ${vkq_calibrate} -o ${CMAKE_CURRENT_BINARY_DIR})
vkq_expect_early(calibrate_out_read_only "^vkquant: -o ${vkq_sys_out}\\.vkq\\.safetensors: ${vkq_cannot}\n$"
  ${vkq_calibrate} -o ${vkq_sys_out}.vkq.safetensors)
vkq_expect_early(bench_json_missing_dir "^vkquant: --json /nonexistent/x\\.json: directory /nonexistent does not exist\n$"
  ${vkq_bench} --json /nonexistent/x.json)
vkq_expect_early(bench_json_is_directory "^vkquant: --json [^\n]*/tests: is a directory\n$"
  ${vkq_bench} --json ${CMAKE_CURRENT_BINARY_DIR})
vkq_expect_early(bench_json_read_only "^vkquant: --json ${vkq_sys_out}\\.json: ${vkq_cannot}\n$"
  ${vkq_bench} --json ${vkq_sys_out}.json)
vkq_expect_early(gauge_html_missing_dir "^vkquant: --html /nonexistent/r\\.html: directory /nonexistent does not exist\n$"
  ${vkq_gauge} --html /nonexistent/r.html)
vkq_expect_early(gauge_html_read_only "^vkquant: --html ${vkq_sys_out}\\.html: ${vkq_cannot}\n$"
  ${vkq_gauge} --html ${vkq_sys_out}.html)
