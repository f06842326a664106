# cmake -DVKQ=vkquant -DARGS="a;b;..." -DOUT=file -P gauge_model_run.cmake
# Runs vkquant and keeps its stdout in OUT (a fixture's output file); fails on a non-zero exit.
execute_process(COMMAND ${VKQ} ${ARGS} RESULT_VARIABLE rc OUTPUT_FILE ${OUT} ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "vkquant ${ARGS} exited ${rc}: ${err}")
endif()
