# `vkquant calibrate` at scale (issue 18, item 6): which MLP rotations are
# learned and why, said on stdout before the work, and the time of each phase
# in the summary. See tests/CMakeLists.txt.

set(vkq_cal calibrate ${models}/kjv-llama --text ${models}/kjv-calib.txt --tokens 256 --ctx 128 --rank 2)
set(vkq_phase "[0-9]+\\.[0-9]")
# kjv-llama has 3.1 M parameters: --mlp auto (the default) learns its 12 matrices.
add_test(NAME cli.calibrate_mlp_auto_small COMMAND vkquant ${vkq_cal} -o ${CMAKE_CURRENT_BINARY_DIR}/cal-mlp-auto.vkq.safetensors)
set_tests_properties(cli.calibrate_mlp_auto_small PROPERTIES PASS_REGULAR_EXPRESSION
  "^MLP rotations: learned \\(model has 3\\.1 M parameters <= 100 M; --mlp off to skip them\\)\n.*MLP matrices: held-out cos1b.*\nphase +seconds\nloading the model +${vkq_phase}\ncapturing keys +${vkq_phase}  256 tokens, [0-9.]+ tokens/s\nkey rotations +${vkq_phase}  4 layers x 2 KV heads x 3 codecs\nMLP rotations +${vkq_phase}  12 matrices\nwriting +${vkq_phase}\ntotal +${vkq_phase}\n$")
# --mlp off and its older spelling --no-mlp: skipped, and the table says so.
add_test(NAME cli.calibrate_mlp_off COMMAND vkquant ${vkq_cal} --mlp off -o ${CMAKE_CURRENT_BINARY_DIR}/cal-mlp-off.vkq.safetensors)
add_test(NAME cli.calibrate_no_mlp COMMAND vkquant ${vkq_cal} --no-mlp -o ${CMAKE_CURRENT_BINARY_DIR}/cal-no-mlp.vkq.safetensors)
set_tests_properties(cli.calibrate_mlp_off cli.calibrate_no_mlp PROPERTIES PASS_REGULAR_EXPRESSION
  "^MLP rotations: skipped \\(--mlp off\\)\n.*\nkey rotations +${vkq_phase}  4 layers x 2 KV heads x 3 codecs\nMLP rotations +-  skipped \\(--mlp off\\)\n")
set_tests_properties(cli.calibrate_mlp_off PROPERTIES FAIL_REGULAR_EXPRESSION "MLP matrices")
# Usage errors: exit 2 before any work.
foreach(case
    "calibrate_mlp_bad|2|${vkq_cal};--mlp;yes"
    "calibrate_mlp_and_no_mlp|2|${vkq_cal};--mlp;on;--no-mlp")
  vkq_expect_exit("${case}")
endforeach()
