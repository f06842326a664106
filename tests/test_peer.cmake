# Peer checks: llama.cpp's prebuilt libraries (scripts/fetch-peer.sh) run by
# vkq-peer on the bundled model. Included in the top directory (see
# tools/peer/CMakeLists.txt) to register the tests; run with -P to do one.
# A missing library or an unbuilt vkq-peer is a failure, not a skip: CI
# fetches the peer.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  set(_peer_lib ${PROJECT_SOURCE_DIR}/third_party/llamacpp/lib/cpu)
  set(_peer_model ${PROJECT_SOURCE_DIR}/models/kjv-llama.gguf)
  if(TARGET vkq-peer)
    set(_peer_exe $<TARGET_FILE:vkq-peer>)
  else()
    set(_peer_exe vkq-peer-not-built)
  endif()
  # "And the LORD" with BOS, as `vkquant tokenize --bos` gives it.
  add_test(NAME peer.llamacpp_cpu_logits_json
           COMMAND ${CMAKE_COMMAND} -DPEER=${_peer_exe} -DLIB=${_peer_lib} -DMODEL=${_peer_model}
                   -DTOKENS=256,65,110,100,32,116,104,101,32,76,79,82,68 -DN_VOCAB=258
                   -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(peer.llamacpp_cpu_logits_json PROPERTIES LABELS peer TIMEOUT 120)
  return()
endif()

# --- script mode: one `vkq-peer logits` run, its JSON's shape checked --------
if(PEER STREQUAL "vkq-peer-not-built")
  message(FATAL_ERROR "vkq-peer was not built: third_party/llamacpp/src/include/llama.h was missing at configure time "
                      "(run scripts/fetch-peer.sh, then cmake again)")
endif()
execute_process(COMMAND ${PEER} logits ${MODEL} --lib ${LIB} --backend cpu --threads 2 --tokens ${TOKENS}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "vkq-peer logits exited ${rc}: ${err}")
endif()

macro(expect what)
  if(NOT (${ARGN}))
    message(FATAL_ERROR "vkq-peer logits: ${what}\n${out}")
  endif()
endmacro()

string(JSON engine ERROR_VARIABLE e GET "${out}" engine)
expect("no JSON object with \"engine\" (${e})" engine STREQUAL "llama.cpp")
string(JSON backend GET "${out}" backend)
expect("backend ${backend}, asked for cpu" backend STREQUAL "cpu")
string(JSON n_vocab GET "${out}" n_vocab)
expect("n_vocab ${n_vocab}, the model has ${N_VOCAB}" n_vocab EQUAL N_VOCAB)
string(REPLACE "," ";" want_tokens "${TOKENS}")
list(LENGTH want_tokens n_tokens)
string(JSON got_n_tokens LENGTH "${out}" tokens)
expect("${got_n_tokens} tokens echoed, ${n_tokens} given" got_n_tokens EQUAL n_tokens)
string(JSON n_top LENGTH "${out}" top)
expect("top has ${n_top} entries, not 10" n_top EQUAL 10)
string(JSON argmax GET "${out}" argmax)
string(JSON top0 GET "${out}" top 0 id)
expect("argmax ${argmax} is not top[0] ${top0}" argmax EQUAL top0)
set(last "")
math(EXPR last_i "${n_top} - 1")
foreach(i RANGE ${last_i})
  string(JSON id GET "${out}" top ${i} id)
  string(JSON logit TYPE "${out}" top ${i} logit)
  expect("top[${i}].id ${id} outside the vocabulary" id GREATER_EQUAL 0 AND id LESS N_VOCAB)
  expect("top[${i}].logit is ${logit}, not a finite number" logit STREQUAL "NUMBER")
endforeach()
foreach(key sum sum_abs l2)
  string(JSON t TYPE "${out}" checksum ${key})
  expect("checksum.${key} is ${t}, not a finite number" t STREQUAL "NUMBER")
endforeach()
string(JSON l2 GET "${out}" checksum l2)
expect("checksum.l2 is ${l2}: every logit zero" NOT l2 STREQUAL "0" AND NOT l2 STREQUAL "0.0")
message(STATUS "vkq-peer logits: argmax ${argmax}, l2 ${l2}")
