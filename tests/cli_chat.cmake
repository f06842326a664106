# CLI tests of issue 16 (parts 4, 5, 7): `vkquant tokenize`, info's tokenizer
# report, and `run --chat`. See tests/CMakeLists.txt for the helpers.
#
# Chat models: the bundled byte-level model with a tokenizer_config.json
# beside it (links to its files): the Zephyr template (writes <eos> as its
# end of turn, not BOS), and a template using {% macro %} (refused by name).
set(chat_data ${CMAKE_CURRENT_SOURCE_DIR}/data/chat)
set(chat_models ${CMAKE_CURRENT_BINARY_DIR}/chat_models)
set(kjv ${PROJECT_SOURCE_DIR}/models/kjv-llama)
add_test(NAME cli.chat_setup COMMAND sh -c
  "d='${chat_models}' && rm -rf \"$d\" && for m in kjv-zephyr kjv-macro; do mkdir -p \"$d/$m\" && \
ln -s '${kjv}/model.safetensors' '${kjv}/config.json' \"$d/$m/\" && cp '${chat_data}'/$m/tokenizer_config.json \"$d/$m/\"; done")
set_tests_properties(cli.chat_setup PROPERTIES FIXTURES_SETUP chat_models)
set(chat_tests)

# tokenize: llama-tokenize's lines; BOS only with --bos; specials only with --special.
add_test(NAME cli.tokenize_prompt_bos COMMAND vkquant tokenize ${kjv} --prompt "In the" --bos --show-count)
set_tests_properties(cli.tokenize_prompt_bos PROPERTIES PASS_REGULAR_EXPRESSION
  "^   256 -> '<bos>'\n    73 -> 'I'\n   110 -> 'n'\n    32 -> ' '\n   116 -> 't'\n   104 -> 'h'\n   101 -> 'e'\nTotal number of tokens: 7\n$")
add_test(NAME cli.tokenize_special_json COMMAND vkquant tokenize ${kjv} --prompt "a\n<eos>" --special --json)
set_tests_properties(cli.tokenize_special_json PROPERTIES PASS_REGULAR_EXPRESSION
  "\"tokenizer\": \"bytes\",\n  \"count\": 3,\n  \"ids\": \\[\n    97,\n    10,\n    257\n  \\],\n  \"pieces\": \\[\n    \"a\",\n    \"\\\\n\",\n    \"<eos>\"\n  \\]")
# Without --special the same text is plain bytes; a piece that is part of a
# UTF-8 character shows as \xNN.
add_test(NAME cli.tokenize_plain_ids COMMAND vkquant tokenize ${kjv} --prompt "<eos>é" --ids)
set_tests_properties(cli.tokenize_plain_ids PROPERTIES PASS_REGULAR_EXPRESSION "^\\[60, 101, 111, 115, 62, 195, 169\\]\n$")
add_test(NAME cli.tokenize_partial_utf8 COMMAND vkquant tokenize ${kjv} --prompt "é")
set_tests_properties(cli.tokenize_partial_utf8 PROPERTIES PASS_REGULAR_EXPRESSION "^   195 -> '\\\\xc3'\n   169 -> '\\\\xa9'\n$")
add_test(NAME cli.tokenize_partial_utf8_json COMMAND vkquant tokenize ${kjv} --prompt "é" --json)
set_tests_properties(cli.tokenize_partial_utf8_json PROPERTIES PASS_REGULAR_EXPRESSION "\"pieces\": \\[\n    \"\\\\\\\\xc3\",\n    \"\\\\\\\\xa9\"\n  \\]")
# A file, read as bytes (one token per byte under the byte tokenizer), with
# no Vulkan driver at all: tokenizing never makes a device.
add_test(NAME cli.tokenize_text_no_driver COMMAND ${CMAKE_COMMAND} -E env VK_DRIVER_FILES=/nonexistent VK_ICD_FILENAMES=/nonexistent
  $<TARGET_FILE:vkquant> tokenize ${PROJECT_SOURCE_DIR}/models/kjv-llama.gguf --text ${CMAKE_CURRENT_SOURCE_DIR}/data/ppl-sample.txt
  --ids --show-count)
file(SIZE ${CMAKE_CURRENT_SOURCE_DIR}/data/ppl-sample.txt ppl_sample_bytes)
set_tests_properties(cli.tokenize_text_no_driver PROPERTIES PASS_REGULAR_EXPRESSION "^\\[[0-9, ]+\\]\nTotal number of tokens: ${ppl_sample_bytes}\n$")
vkq_expect_error(tokenize_neither 2 "give exactly one of --text FILE and --prompt TEXT" tokenize ${kjv})
vkq_expect_error(tokenize_both 2 "give exactly one of --text FILE and --prompt TEXT" tokenize ${kjv} --prompt a --text ${kjv}/config.json)
vkq_expect_error(tokenize_missing_text 1 "/nonexistent/text.txt: cannot open" tokenize ${kjv} --text /nonexistent/text.txt)
vkq_expect_error(tokenize_text_directory 1 "kjv-llama: is a directory, not a regular file" tokenize ${kjv} --text ${kjv})
vkq_expect_error(tokenize_missing_model 1 "/nonexistent/model.gguf" tokenize /nonexistent/model.gguf --prompt a)

# info: the tokenizer and the chat template.
add_test(NAME cli.info_tokenizer COMMAND vkquant info ${kjv})
set_tests_properties(cli.info_tokenizer PROPERTIES PASS_REGULAR_EXPRESSION
  "\ntokenizer: bytes, vocab 258, bos 256 '<bos>', eos 257 '<eos>', pre-tokenizer bytes, normalizer none\nchat template: none\n")
add_test(NAME cli.info_chat_template_json COMMAND vkquant info ${chat_models}/kjv-zephyr --json)
set_tests_properties(cli.info_chat_template_json PROPERTIES PASS_REGULAR_EXPRESSION
  "\"tokenizer\": {\n    \"kind\": \"bytes\",\n    \"vocab_size\": 258,\n    \"padded_rows\": 0,\n    \"bos\": {\n      \"id\": 256,\n      \"piece\": \"<bos>\"\n    },.*\"chat_template\": {\n      \"family\": \"zephyr\",\n      \"source\": \"[^\"]*kjv-zephyr/tokenizer_config.json\",\n      \"key\": \"chat_template\"")
add_test(NAME cli.info_chat_template_refused COMMAND vkquant info ${chat_models}/kjv-macro)
set_tests_properties(cli.info_chat_template_refused PROPERTIES PASS_REGULAR_EXPRESSION
  "chat template: cannot use: [^\n]*kjv-macro/tokenizer_config.json: chat_template: not a template vkquant can render \\(unsupported tag {% macro %}\\)\n")
list(APPEND chat_tests cli.info_chat_template_json cli.info_chat_template_refused)

# run --chat, one turn: the rendered prompt is the template's (BOS added: the
# template does not write it; <eos> parsed as the special token), 85 tokens.
add_test(NAME cli.run_chat_prompt COMMAND vkquant run ${chat_models}/kjv-zephyr --chat --prompt "Who begat Enos?"
  --system "Answer in the words of Genesis." -n 16 --temp 0 --show-prompt)
set_tests_properties(cli.run_chat_prompt PROPERTIES PASS_REGULAR_EXPRESSION
  "<\\|system\\|>\nAnswer in the words of Genesis\\.<eos>\n<\\|user\\|>\nWho begat Enos\\?<eos>\n<\\|assistant\\|>\n.*prefill: 85 tokens in")
# Two turns from stdin with no answer (-n 0): the second feeds only what
# follows the first's 40 cached tokens (39 more: 79 in all; a fresh prefill would be 40 + 79).
add_test(NAME cli.run_chat_stdin_reuses_cache COMMAND sh -c
  "printf 'And Seth lived\\nAnd God said\\n' | '$<TARGET_FILE:vkquant>' run '${chat_models}/kjv-zephyr' --chat -n 0 --show-prompt")
set_tests_properties(cli.run_chat_stdin_reuses_cache PROPERTIES PASS_REGULAR_EXPRESSION
  "<\\|user\\|>\nAnd Seth lived<eos>\n<\\|assistant\\|>\n<eos>\n<\\|user\\|>\nAnd God said<eos>\n<\\|assistant\\|>\n.*prefill: 79 tokens in")
list(APPEND chat_tests cli.run_chat_prompt cli.run_chat_stdin_reuses_cache)
vkq_expect_error(run_chat_no_template 1 "kjv-llama/tokenizer_config.json: chat_template: missing, and --chat needs the model's chat template"
  run ${kjv} --chat --prompt hi)
vkq_expect_error(run_chat_gguf_no_template 1 "kjv-llama.gguf: tokenizer.chat_template: missing"
  run ${PROJECT_SOURCE_DIR}/models/kjv-llama.gguf --chat --prompt hi)
vkq_expect_error(run_chat_refused_template 1
  "kjv-macro/tokenizer_config.json: chat_template: not a template vkquant can render \\(unsupported tag {% macro %}\\)"
  run ${chat_models}/kjv-macro --chat --prompt hi)
vkq_expect_error(run_system_without_chat 2 "--system applies to --chat" run --system hi --prompt x)
list(APPEND chat_tests cli.run_chat_refused_template)
set_tests_properties(${chat_tests} PROPERTIES FIXTURES_REQUIRED chat_models)
