# The real Llama-2-architecture model in ../shared/models/stories260K: greedy generation from
# BOS against the text that ships with it.
add_test(NAME stories_greedy COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/stories_greedy.sh $<TARGET_FILE:mart>)
set_tests_properties(stories_greedy PROPERTIES TIMEOUT 120 ENVIRONMENT "OMP_NUM_THREADS=2")
# mart score of stories260K against the float64 PyTorch reference.
add_test(NAME stories_score COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/stories_score.sh $<TARGET_FILE:mart>)
set_tests_properties(stories_score PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=2")
# mart eval of stories260K on MATH-500 (--limit 5) from the data directory: the transcripts
# hold every extracted answer and verdict.
add_test(NAME stories_eval COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/stories_eval.sh $<TARGET_FILE:mart>)
set_tests_properties(stories_eval PROPERTIES TIMEOUT 300
  ENVIRONMENT "OMP_NUM_THREADS=2;MART_DATA=${PROJECT_SOURCE_DIR}/../shared/data")
