# grade: fuzz corpus regression (every build) and the libFuzzer target (clang, on request).
add_executable(grade_fuzz_regress ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_regress.c
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_grade.c)
target_compile_options(grade_fuzz_regress PRIVATE ${MART_WARNINGS})
target_link_libraries(grade_fuzz_regress PRIVATE libmart)
add_test(NAME grade_fuzz_corpus COMMAND grade_fuzz_regress ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus)

# The CLI contract: --input with pred/response lines, --pred/--gold, a bad line names itself.
add_test(NAME grade_cli_contract COMMAND /bin/sh ${CMAKE_CURRENT_SOURCE_DIR}/grade_cli.sh
  $<TARGET_FILE:mart>)

# libFuzzer (clang only): cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DMART_FUZZ=ON
#   -DMART_NATIVE=OFF && cmake --build build-fuzz --target grade_fuzz, then
#   build-fuzz/tests/grade_fuzz -max_len=4096 -timeout=2 NEW_DIR tests/fuzz/corpus
#   build-fuzz/tests/grade_fuzz -merge=1 tests/fuzz/corpus NEW_DIR   (keeps it minimal)
# libmart is instrumented for coverage so that the fuzzer sees inside the grader.
option(MART_FUZZ "Build the libFuzzer targets (clang only)" OFF)
if(MART_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  target_compile_options(libmart PRIVATE -fsanitize=fuzzer-no-link,address,undefined -g)
  add_executable(grade_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_grade.c)
  target_compile_options(grade_fuzz PRIVATE -fsanitize=fuzzer,address,undefined -g)
  target_link_options(grade_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(grade_fuzz PRIVATE libmart)
elseif(MART_FUZZ)
  message(WARNING "MART_FUZZ needs clang (CMAKE_C_COMPILER=clang); fuzz targets skipped")
endif()
