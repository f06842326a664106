# CLI tests of issue 19: see tests/CMakeLists.txt.
#
# Special files and memory caps (items 3 and 4). A FIFO with no writer must be
# refused naming what it is, never opened for a blocking read: every test here
# has a TIMEOUT, so a regression fails instead of hanging the suite. A learned
# rotation of d = 16384 (a 256 KiB file) is refused before it allocates: that
# test runs under a 1 GiB address-space limit, so a regression dies of
# bad_alloc. Oversized JSON files are sparse (no disk).
set(vkq_models ${PROJECT_SOURCE_DIR}/models)
set(files19 ${CMAKE_CURRENT_BINARY_DIR}/files19)
set(over_cap 268435457)  # kMaxJsonFileBytes + 1
# wide.safetensors: one F32 tensor (4, 16384); wider.safetensors: (2, 100000).
# The 8-byte header length is little-endian: 65 = \101, 66 = \102.
add_test(NAME cli.files_setup COMMAND sh -c
  "d='${files19}' && rm -rf \"$d\" && mkdir -p \"$d/dir\" \"$d/bigcfg\" \"$d/bigtok\" && mkfifo \"$d/fifo\" && \
ln -s '${vkq_models}/kjv-llama/model.safetensors' \"$d/bigcfg/model.safetensors\" && truncate -s ${over_cap} \"$d/bigcfg/config.json\" && \
ln -s '${vkq_models}/kjv-llama/model.safetensors' '${vkq_models}/kjv-llama/config.json' \"$d/bigtok/\" && \
truncate -s ${over_cap} \"$d/bigtok/tokenizer.json\" && \
printf '\\101\\0\\0\\0\\0\\0\\0\\0{\"w\":{\"dtype\":\"F32\",\"shape\":[4,16384],\"data_offsets\":[0,262144]}}' > \"$d/wide.safetensors\" && \
truncate -s +262144 \"$d/wide.safetensors\" && \
printf '\\102\\0\\0\\0\\0\\0\\0\\0{\"w\":{\"dtype\":\"F32\",\"shape\":[2,100000],\"data_offsets\":[0,800000]}}' > \"$d/wider.safetensors\" && \
truncate -s +800000 \"$d/wider.safetensors\"")
set_tests_properties(cli.files_setup PROPERTIES FIXTURES_SETUP files19 TIMEOUT 20)

set(fifo ${files19}/fifo)
set(calib ${vkq_models}/kjv-calib.txt)
set(files19_tests)
macro(vkq_files_error name code regex)
  vkq_expect_error(${name} ${code} "${regex}" ${ARGN})
  list(APPEND files19_tests cli.${name})
endmacro()

# A FIFO wherever a file is read: --text (ppl, calibrate, gauge), the model,
# info FILE, --rotations, bench --compare.
vkq_files_error(files_ppl_text_fifo 1 "fifo: is a FIFO, not a regular file" ppl ${vkq_models}/kjv-llama --text ${fifo})
vkq_files_error(files_calibrate_text_fifo 1 "fifo: is a FIFO, not a regular file"
  calibrate ${vkq_models}/kjv-llama --text ${fifo} -o ${files19}/never.vkq.safetensors)
vkq_files_error(files_gauge_text_fifo 1 "fifo: is a FIFO, not a regular file" gauge ${vkq_models}/kjv-llama --text ${fifo})
vkq_files_error(files_model_fifo 1 "fifo: is a FIFO, not a regular file" ppl ${fifo} --text ${calib})
vkq_files_error(files_info_fifo 1 "fifo: is a FIFO, not a regular file" info ${fifo})
vkq_files_error(files_rotations_fifo 1 "fifo: is a FIFO, not a regular file"
  ppl ${vkq_models}/kjv-llama --text ${calib} --kcache 1bit --rotation learned --rotations ${fifo})
vkq_files_error(files_bench_compare_fifo 1 "fifo: is a FIFO, not a regular file" bench --compare ${fifo})
# A directory where a file is meant, and a character device.
vkq_files_error(files_ppl_text_directory 1 "dir: is a directory, not a regular file[^:]*$" ppl ${vkq_models}/kjv-llama --text ${files19}/dir)
vkq_files_error(files_info_dev_zero 1 "/dev/zero: is a character device, not a regular file[^:]*$" info /dev/zero)
vkq_files_error(files_model_dev_zero 1 "/dev/zero: is a character device, not a regular file[^:]*$" ppl /dev/zero --text ${calib})

# JSON files over the 256 MiB cap: refused from their size, naming it and the cap.
vkq_files_error(files_config_over_cap 1 "bigcfg/config.json: config.json is ${over_cap} bytes, over the 268435456-byte cap"
  ppl ${files19}/bigcfg --text ${calib})
vkq_files_error(files_tokenizer_over_cap 1 "bigtok/tokenizer.json: tokenizer.json is ${over_cap} bytes, over the 268435456-byte cap"
  ppl ${files19}/bigtok --text ${calib})

# Learned rotations of d = 16384 / 100000 from files of 256 KiB / 800 KB:
# refused at once, within a 1 GiB address space (sanitizer builds reserve
# terabytes of shadow memory up front, so there the limit is left to the
# in-process RotationDimCap tests, which cap growth from the current size).
if(VKQ_SANITIZE OR VKQ_FUZZ)
  set(files19_gauge "$<TARGET_FILE:vkquant>")
  set(files19_gauge_args "")
else()
  set(files19_gauge prlimit)
  set(files19_gauge_args "--as=1073741824;$<TARGET_FILE:vkquant>;")
endif()
foreach(w IN ITEMS wide:16384:32 wider:100000:1192)
  string(REPLACE ":" ";" w "${w}")
  list(GET w 0 file)
  list(GET w 1 d)
  list(GET w 2 gib)
  add_test(NAME cli.files_gauge_${file} COMMAND ${CMAKE_COMMAND} -DVKQ=${files19_gauge} -DEXPECT=1
    "-DARGS=${files19_gauge_args}gauge;${files19}/${file}.safetensors;--backend;cpu"
    "-DMATCH=${file}\\.safetensors: tensor \"w\": learned rotations of d=${d} need ~${gib} GiB \\(d×d matrices\\); the limit is d ≤ 8192"
    -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
  list(APPEND files19_tests cli.files_gauge_${file})
endforeach()

set_tests_properties(${files19_tests} PROPERTIES FIXTURES_REQUIRED files19 TIMEOUT 20)
