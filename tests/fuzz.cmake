# Fuzz targets of the input parsers (safetensors headers, config.json, tokenizer.json, the JSONL
# reader), as tests/grade.cmake does for the grader: each committed corpus
# (tests/fuzz/corpus_<target>) is replayed by ctest in every build, and with clang and
# -DMART_FUZZ=ON the libFuzzer binaries are built:
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DMART_FUZZ=ON -DMART_NATIVE=OFF
#   cmake --build build-fuzz --target jsonl_fuzz
#   build-fuzz/tests/jsonl_fuzz -max_len=4096 -timeout=5 -close_fd_mask=2 NEW tests/fuzz/corpus_jsonl
#   build-fuzz/tests/jsonl_fuzz -merge=1 -use_counters=0 MIN tests/fuzz/corpus_jsonl NEW
# and MIN (the inputs that reach a new edge) replaces the corpus, beside the seeds
# tests/fuzz/make_parser_seeds.py writes. docs/RELIABILITY.md has the runs and findings.
foreach(target safetensors config tokenizer jsonl)
  add_executable(${target}_fuzz_regress ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_regress.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c)
  target_compile_options(${target}_fuzz_regress PRIVATE ${MART_WARNINGS})
  target_link_libraries(${target}_fuzz_regress PRIVATE libmart)
  add_test(NAME ${target}_fuzz_corpus COMMAND ${target}_fuzz_regress
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus_${target})
  if(MART_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
    add_executable(${target}_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c)
    target_compile_options(${target}_fuzz PRIVATE -fsanitize=fuzzer,address,undefined -g)
    target_link_options(${target}_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${target}_fuzz PRIVATE libmart)
  endif()
endforeach()
