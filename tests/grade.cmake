# grade: fuzz corpus regression (every build) and the libFuzzer target (clang, on request).
add_executable(grade_fuzz_regress ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_regress.c
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_grade.c)
target_compile_options(grade_fuzz_regress PRIVATE ${MART_WARNINGS})
target_link_libraries(grade_fuzz_regress PRIVATE libmart)
add_test(NAME grade_fuzz_corpus COMMAND grade_fuzz_regress ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus)

# The CLI contract: --input with pred/response lines, --pred/--gold, a bad line names itself.
add_test(NAME grade_cli_contract COMMAND /bin/sh ${CMAKE_CURRENT_SOURCE_DIR}/grade_cli.sh
  $<TARGET_FILE:mart>)

# libFuzzer: cmake -DCMAKE_C_COMPILER=clang -DMART_FUZZ=ON, then
#   ./grade_fuzz -max_len=4096 ../tests/fuzz/corpus
option(MART_FUZZ "Build the libFuzzer targets (clang only)" OFF)
if(MART_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(grade_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_grade.c)
  target_compile_options(grade_fuzz PRIVATE -fsanitize=fuzzer,address -g)
  target_link_options(grade_fuzz PRIVATE -fsanitize=fuzzer,address)
  target_link_libraries(grade_fuzz PRIVATE libmart)
endif()
