# cmake -DVKQ=vkquant -DPEER=vkq-peer -DLIB=dir -DMODEL=model.gguf -DTYPE=q4_k_m -DOUT=dir
#       -DPROMPT=text -DTOKENS=ids -P quantize_peer.cmake
# Both directions between `vkquant quantize` and llama.cpp (tools/peer):
#   1. vkquant writes MODEL as TYPE; llama.cpp loads it and its logits after
#      TOKENS (PROMPT with BOS) are finite, with the same top-1 as vkquant's
#      own greedy next token on the same file (weights as stored, and
#      dequantized to f32 on load);
#   2. llama.cpp's quantizer writes MODEL as TYPE; vkquant loads that file and
#      its greedy next token (f32) is llama.cpp's top-1 on it.
string(TOUPPER ${TYPE} PEER_TYPE)
file(MAKE_DIRECTORY ${OUT})

function(run what)
  execute_process(COMMAND ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} exited ${rc}: ${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# llama.cpp's top-1 after TOKENS on `file`, its logits checked finite.
function(peer_top1 file var)
  run("vkq-peer logits ${file}" ${PEER} logits ${file} --lib ${LIB} --backend cpu --threads 2 --tokens ${TOKENS})
  string(JSON argmax GET "${out}" argmax)
  foreach(i RANGE 9)
    string(JSON t TYPE "${out}" top ${i} logit)
    if(NOT t STREQUAL "NUMBER")
      message(FATAL_ERROR "llama.cpp on ${file}: top[${i}].logit is ${t}, not a finite number\n${out}")
    endif()
  endforeach()
  set(${var} ${argmax} PARENT_SCOPE)
endfunction()

# vkquant's greedy next byte after PROMPT on `file` (the bundled byte-level models: ids are bytes).
function(vkquant_top1 file weights var)
  run("vkquant run ${file}" ${VKQ} run ${file} --prompt ${PROMPT} -n 1 --temp 0 --weights ${weights})
  string(LENGTH "${PROMPT}" n)
  string(SUBSTRING "${out}" ${n} 1 next)
  set(${var} "${next}" PARENT_SCOPE)
endfunction()

function(expect_same_top1 file)
  peer_top1(${file} peer)
  string(ASCII ${peer} peer_char)
  foreach(weights ${ARGN})
    vkquant_top1(${file} ${weights} ours)
    if(NOT peer_char STREQUAL ours)
      message(FATAL_ERROR "${file}: llama.cpp's top-1 is id ${peer} ('${peer_char}'), vkquant's next byte (--weights ${weights}) is '${ours}'")
    endif()
  endforeach()
  list(JOIN ARGN ", " how)
  message(STATUS "${file}: top-1 id ${peer} ('${peer_char}') in llama.cpp and vkquant (--weights ${how})")
endfunction()

set(ours ${OUT}/vkquant-${TYPE}.gguf)
set(theirs ${OUT}/llamacpp-${TYPE}.gguf)
file(REMOVE ${ours} ${theirs})
run("vkquant quantize" ${VKQ} quantize ${MODEL} ${ours} --type ${TYPE})
expect_same_top1(${ours} f32 stored)
run("vkq-peer quantize" ${PEER} quantize ${MODEL} --lib ${LIB} --threads 2 --type ${PEER_TYPE} -o ${theirs})
expect_same_top1(${theirs} f32)
