# cmake -DVKQ=vkquant -DARGS="a;b;..." -DOUT=file -P gauge_model_run.cmake
# Runs vkquant and keeps its stdout in OUT (a fixture's output file); fails on a non-zero exit,
# and, with -DEXPECT=regex, when the output does not match it.
execute_process(COMMAND ${VKQ} ${ARGS} RESULT_VARIABLE rc OUTPUT_FILE ${OUT} ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "vkquant ${ARGS} exited ${rc}: ${err}")
endif()
if(DEFINED EXPECT)
  file(READ ${OUT} out)
  if(NOT out MATCHES "${EXPECT}")
    message(FATAL_ERROR "vkquant ${ARGS}: the output does not match ${EXPECT}:\n${out}")
  endif()
endif()
