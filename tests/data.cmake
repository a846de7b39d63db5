# mart data get against a local HTTP server on 127.0.0.1, and data prepare against an
# independent Python reading of the same files.
add_test(NAME data_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/data_cli.sh $<TARGET_FILE:mart>)
set_tests_properties(data_cli PROPERTIES TIMEOUT 120
  ENVIRONMENT "MART_DATA=${PROJECT_SOURCE_DIR}/../shared/data")
