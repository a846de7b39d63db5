# Every JSONL batch command under hostile input (random bytes, escapes, lone surrogates, NULs,
# CRLF, long lines, empty files), its output checked by Python's strict JSON/UTF-8 reader.
find_program(MART_PYTHON3 python3)
if(MART_PYTHON3)
  add_test(NAME batch_commands_answer_hostile_input_with_strict_json
    COMMAND ${MART_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/io/batch_hostile.py $<TARGET_FILE:mart>)
  set_tests_properties(batch_commands_answer_hostile_input_with_strict_json PROPERTIES TIMEOUT 600)
else()
  message(STATUS "python3 not found: the hostile-input test of the batch commands is skipped")
endif()
