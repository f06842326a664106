# `vkquant gauge MODEL` (issue 6, item 4) as a user runs it, on the bundled
# dense and MoE models with few tokens and solver iterations: the JSON's
# structure, --rotations with the committed artifact and with a small
# artifact calibrated with a precision policy, the HTML report in headless
# Chromium, and the refusals. Included from tests/CMakeLists.txt.
if(TARGET vkquant)
  set(gm ${PROJECT_SOURCE_DIR}/models)
  set(gdir ${CMAKE_CURRENT_BINARY_DIR}/gauge_model)
  file(MAKE_DIRECTORY ${gdir})
  set(vkq -DVKQ=$<TARGET_FILE:vkquant>)
  set(check ${CMAKE_CURRENT_SOURCE_DIR}/gauge_model_check.cmake)
  # Few keys and iterations: these tests check structure, not the figures' quality.
  set(fast --tokens 512 --iters 4 --warm-start 10 --mlp-iters 2 --mlp-warm-start 0)

  # The fidelity JSON the HTML report plots (one chunk of text): the keys-only rows of the 1-bit and transform codes
  # at 1.5 bits, the same with q4 values, and the 1-bit MLP rows (a sample of the ~100 rows, which took a minute).
  add_test(NAME cli.gauge_fidelity_json COMMAND ${CMAKE_COMMAND} ${vkq}
           "-DARGS=ppl;${gm}/kjv-llama;--text;${CMAKE_CURRENT_SOURCE_DIR}/data/ppl-sample.txt;--rotations;${gm}/kjv-llama.vkq.safetensors;--compare;--chunks;1;--json;--rows;kv-budget 1.5;--rows;mlp 1bit;--rows;1bit learned post float"
           -DOUT=${gdir}/fidelity.json -P ${CMAKE_CURRENT_SOURCE_DIR}/gauge_model_run.cmake)
  set_tests_properties(cli.gauge_fidelity_json PROPERTIES FIXTURES_SETUP gauge_fidelity)

  # Dense: every layer and KV head, both RoPE modes, every MLP matrix; the report with the fidelity plot.
  add_test(NAME cli.gauge_model_dense COMMAND ${CMAKE_COMMAND} ${vkq}
           "-DARGS=gauge;${gm}/kjv-llama;--json;${fast};--html;${gdir}/kjv-llama.html;--fidelity;${gdir}/fidelity.json"
           -DOUT=${gdir}/kjv-llama.json -DLAYERS=4 -DKV_HEADS=2 -DMLP=dense -DFROM=solver -P ${check})
  set_tests_properties(cli.gauge_model_dense PROPERTIES FIXTURES_REQUIRED gauge_fidelity FIXTURES_SETUP gauge_dense_html)
  # FIDELITY: the fidelity plots' point counts come from the JSON (every config; the keys-only 1-bit learned rows' KL).
  add_test(NAME cli.gauge_html_dense COMMAND ${CMAKE_COMMAND} -DHTML=${gdir}/kjv-llama.html -DFIDELITY=${gdir}/fidelity.json
           "-DPOINTS=plot-keys-post=40;plot-keys-pre=40;plot-mlp=48" -P ${CMAKE_CURRENT_SOURCE_DIR}/check_html.cmake)
  set_tests_properties(cli.gauge_html_dense PROPERTIES FIXTURES_REQUIRED gauge_dense_html)

  # MoE (GGUF): expert banks under one shared rotation beside the per-expert mean; a report without --fidelity says so.
  add_test(NAME cli.gauge_model_moe COMMAND ${CMAKE_COMMAND} ${vkq}
           "-DARGS=gauge;${gm}/kjv-olmoe.gguf;--json;${fast};--experts;3;--html;${gdir}/kjv-olmoe.html"
           -DLAYERS=4 -DKV_HEADS=2 -DMLP=moe -DEXPERTS=3 -P ${check})
  set_tests_properties(cli.gauge_model_moe PROPERTIES FIXTURES_SETUP gauge_moe_html)
  add_test(NAME cli.gauge_html_moe COMMAND ${CMAKE_COMMAND} -DHTML=${gdir}/kjv-olmoe.html
           "-DPOINTS=plot-keys-post=40;plot-keys-pre=40;plot-mlp=48" -DMISSING=fidelity-missing
           -P ${CMAKE_CURRENT_SOURCE_DIR}/check_html.cmake)
  set_tests_properties(cli.gauge_html_moe PROPERTIES FIXTURES_REQUIRED gauge_moe_html)

  # The committed artifact's rotations and means: learned beats SRHT on every head.
  add_test(NAME cli.gauge_model_rotations COMMAND ${CMAKE_COMMAND} ${vkq}
           "-DARGS=gauge;${gm}/kjv-llama;--rotations;${gm}/kjv-llama.vkq.safetensors;--no-mlp;--json;--tokens;1024;--iters;4;--warm-start;10"
           -DLAYERS=4 -DKV_HEADS=2 -DFROM=artifact -DLEARNED_BEATS_SRHT=ON -P ${check})

  # The precision policy (docs/design.md §2.8): a small keys-only artifact calibrated with --kv-budget, gauged with
  # --rotations. keys.policy per rope mode: the stored plan per (layer, KV head) among the table's 37 options (head_dim
  # 64), the policy's loss at 23 budgets (1.25 to 4 bits by 1/8); the report's plots (23 + 37 points, + 32 for the
  # transform code's plan at 1/8 .. 4 bits) and plan tables (the sign code's and the transform code's); each head's
  # sensitivity measured on one chunk.
  add_test(NAME cli.gauge_policy_artifact COMMAND ${CMAKE_COMMAND} ${vkq}
           "-DARGS=calibrate;${gm}/kjv-llama;--text;${gm}/kjv-calib.txt;--tokens;2048;--iters;4;--mlp;off;--kv-budget;1.75;--kv-sensitivity-chunks;1;-o;${gdir}/policy.vkq.safetensors"
           "-DEXPECT=layer 3 [^\n]*KL alone 0[.][0-9]+[^\n]*KL alone 0[.][0-9]+.*head sensitivity +[0-9.]+  8 heads x 3 codecs on 1 chunks"
           -DOUT=${gdir}/policy-calibrate.txt -P ${CMAKE_CURRENT_SOURCE_DIR}/gauge_model_run.cmake)
  set_tests_properties(cli.gauge_policy_artifact PROPERTIES FIXTURES_SETUP gauge_policy_artifact)
  add_test(NAME cli.gauge_model_policy COMMAND ${CMAKE_COMMAND} ${vkq}
           "-DARGS=gauge;${gm}/kjv-llama;--rotations;${gdir}/policy.vkq.safetensors;--no-mlp;--json;--tokens;512;--iters;4;--warm-start;10;--html;${gdir}/policy.html"
           -DLAYERS=4 -DKV_HEADS=2 -DFROM=artifact -DPOLICY_CURVE=23 -DPOLICY_OPTIONS=37 -P ${check})
  set_tests_properties(cli.gauge_model_policy PROPERTIES FIXTURES_REQUIRED gauge_policy_artifact FIXTURES_SETUP gauge_policy_html)
  add_test(NAME cli.gauge_html_policy COMMAND ${CMAKE_COMMAND} -DHTML=${gdir}/policy.html
           "-DPOINTS=plot-keys-post=40;plot-keys-pre=40;plot-policy-post=92;plot-policy-pre=92;plot-policy-ropemean=92"
           "-DIDS=policy-plan-post;policy-plan-pre;policy-plan-ropemean;tc-plan-post;tc-plan-pre;tc-plan-ropemean" -DMISSING=fidelity-missing
           -P ${CMAKE_CURRENT_SOURCE_DIR}/check_html.cmake)
  set_tests_properties(cli.gauge_html_policy PROPERTIES FIXTURES_REQUIRED gauge_policy_html)

  # --ctx: the chunk and KV-cache length of the key capture (--tokens 200 at
  # ctx 128 runs 200 tokens: a chunk and part of the next), refused past the
  # model's context or without keys.
  add_test(NAME cli.gauge_model_ctx COMMAND vkquant gauge ${gm}/kjv-llama --no-mlp --json --ctx 128 --tokens 200 --iters 2
           --warm-start 0)
  set_tests_properties(cli.gauge_model_ctx PROPERTIES PASS_REGULAR_EXPRESSION "\"tokens\": 200,\n *\"ctx\": 128,")
  vkq_expect_error(gauge_ctx_too_long 1 "--ctx: 1000 is longer than the model's context of 256" gauge ${gm}/kjv-llama --no-mlp --ctx 1000)
  vkq_expect_error(gauge_ctx_without_keys 1 "--ctx: applies to the keys, which --no-keys skips" gauge ${gm}/kjv-llama --no-keys --ctx 64)

  # Terminal tables: the verdict rule is stated, a verdict per layer.
  add_test(NAME cli.gauge_model_tables COMMAND vkquant gauge ${gm}/kjv-llama --no-mlp ${fast})
  set_tests_properties(cli.gauge_model_tables PROPERTIES PASS_REGULAR_EXPRESSION
    "verdict: held-out learned cos1b >= 0\\.92.*\n +3 +(1-bit ok|needs residual|keep fp16) ")

  foreach(case
      "gauge_model_missing|1|gauge;/nonexistent/model-dir"
      "gauge_rotations_other_model|1|gauge;${gm}/kjv-olmoe;--no-mlp;--rotations;${gm}/kjv-llama.vkq.safetensors"
      "gauge_rotations_not_artifact|1|gauge;${gm}/kjv-llama;--no-mlp;--rotations;${gm}/kjv-llama/model.safetensors"
      "gauge_text_missing|1|gauge;${gm}/kjv-llama;--text;/nonexistent.txt"
      "gauge_fidelity_missing|1|gauge;${gm}/kjv-llama;--html;${gdir}/x.html;--fidelity;/nonexistent.json"
      "gauge_fidelity_not_ppl|1|gauge;${gm}/kjv-llama;--html;${gdir}/x.html;--fidelity;${gm}/kjv-llama/config.json"
      "gauge_fidelity_without_html|1|gauge;${gm}/kjv-llama;--fidelity;${gm}/kjv-llama/config.json"
      "gauge_html_no_dir|1|gauge;${gm}/kjv-llama;--html;/nonexistent-dir/report.html"
      "gauge_html_is_dir|1|gauge;${gm}/kjv-llama;--html;${gdir}"
      "gauge_keys_file_model_flag|1|gauge;${CMAKE_CURRENT_BINARY_DIR}/planted_small.safetensors;--rotations;${gm}/kjv-llama.vkq.safetensors")
    vkq_expect_exit("${case}")
  endforeach()
  set_tests_properties(cli.gauge_keys_file_model_flag PROPERTIES FIXTURES_REQUIRED planted_keys)
endif()
