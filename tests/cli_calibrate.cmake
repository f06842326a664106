# `vkquant calibrate` at scale (issue 18, item 6): which MLP rotations are
# learned and why, said on stdout before the work, and the time of each phase
# in the summary. See tests/CMakeLists.txt.

# Four solver iterations (keys and MLP): these tests check what runs and what is said, not the rotations' quality.
set(vkq_cal calibrate ${models}/kjv-llama --text ${models}/kjv-calib.txt --tokens 256 --ctx 128 --rank 2 --iters 4)
set(vkq_phase "[0-9]+\\.[0-9]")
# kjv-llama has 3.1 M parameters: --mlp auto (the default) learns its 12 matrices.
add_test(NAME cli.calibrate_mlp_auto_small COMMAND vkquant ${vkq_cal} -o ${CMAKE_CURRENT_BINARY_DIR}/cal-mlp-auto.vkq.safetensors)
set_tests_properties(cli.calibrate_mlp_auto_small PROPERTIES PASS_REGULAR_EXPRESSION
  "^MLP rotations: learned \\(model has 3\\.1 M parameters <= 100 M; --mlp off to skip them\\)\n.*MLP matrices: held-out cos1b.*\nphase +seconds\nloading the model +${vkq_phase}\ncapturing keys +${vkq_phase}  256 tokens, [0-9.]+ tokens/s, on the host \\((generic|avx2|avx512)\\)\nkey rotations +${vkq_phase}  4 layers x 2 KV heads x 3 codecs\nMLP rotations +${vkq_phase}  12 matrices\nwriting +${vkq_phase}\ntotal +${vkq_phase}\n$")
# --mlp off and its older spelling --no-mlp: skipped, and the table says so.
add_test(NAME cli.calibrate_mlp_off COMMAND vkquant ${vkq_cal} --mlp off -o ${CMAKE_CURRENT_BINARY_DIR}/cal-mlp-off.vkq.safetensors)
add_test(NAME cli.calibrate_no_mlp COMMAND vkquant ${vkq_cal} --no-mlp -o ${CMAKE_CURRENT_BINARY_DIR}/cal-no-mlp.vkq.safetensors)
set_tests_properties(cli.calibrate_mlp_off cli.calibrate_no_mlp PROPERTIES PASS_REGULAR_EXPRESSION
  "^MLP rotations: skipped \\(--mlp off\\)\n.*\nkey rotations +${vkq_phase}  4 layers x 2 KV heads x 3 codecs\nMLP rotations +-  skipped \\(--mlp off\\)\n")
set_tests_properties(cli.calibrate_mlp_off PROPERTIES FAIL_REGULAR_EXPRESSION "MLP matrices")
# Where the capture runs (the test above: --capture auto on lavapipe, a CPU
# device, takes the host's kernels): forced either way, and said in the table.
add_test(NAME cli.calibrate_capture_device COMMAND vkquant ${vkq_cal} --no-mlp --capture device
         -o ${CMAKE_CURRENT_BINARY_DIR}/cal-capture-device.vkq.safetensors)
set_tests_properties(cli.calibrate_capture_device PROPERTIES PASS_REGULAR_EXPRESSION
  "\ncapturing keys +${vkq_phase}  256 tokens, [0-9.]+ tokens/s, on the device\n")
add_test(NAME cli.calibrate_capture_cpu_generic COMMAND ${CMAKE_COMMAND} -E env VKQ_CPU_ISA=generic
         $<TARGET_FILE:vkquant> ${vkq_cal} --no-mlp --capture cpu -o ${CMAKE_CURRENT_BINARY_DIR}/cal-capture-cpu.vkq.safetensors)
set_tests_properties(cli.calibrate_capture_cpu_generic PROPERTIES PASS_REGULAR_EXPRESSION
  "\ncapturing keys +${vkq_phase}  256 tokens, [0-9.]+ tokens/s, on the host \\(generic\\)\n")
# Usage errors: exit 2 before any work.
foreach(case
    "calibrate_mlp_bad|2|${vkq_cal};--mlp;yes"
    "calibrate_mlp_and_no_mlp|2|${vkq_cal};--mlp;on;--no-mlp"
    "calibrate_capture_bad|2|${vkq_cal};--capture;gpu"
    "gauge_capture_bad|2|gauge;${models}/kjv-llama;--capture;host")
  vkq_expect_exit("${case}")
endforeach()
# An instruction set that does not exist: one line naming the variable,
# exit 2 (a bad environment variable, like a bad flag), before any work.
add_test(NAME cli.calibrate_cpu_isa_bad COMMAND ${CMAKE_COMMAND} -DVKQ=$<TARGET_FILE:vkquant> -DEXPECT=2
         "-DARGS=${vkq_cal};--capture;cpu;-o;${CMAKE_CURRENT_BINARY_DIR}/cal-isa-bad.vkq.safetensors"
         "-DMATCH=VKQ_CPU_ISA=sse9: not an instruction set \\(generic, avx2 or avx512\\)" -DENVS=VKQ_CPU_ISA=sse9
         -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
