# The fault tests run once per build (label "slow": scripts/test.sh leaves them out of its
# second, one-thread pass; determinism across thread counts has its own test).
# Faults for real: a full disk (a small tmpfs; skipped where it cannot be mounted).
add_test(NAME disk_full_stops_at_the_first_failed_write_and_resumes
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/disk_full.sh $<TARGET_FILE:mart>)
set_tests_properties(disk_full_stops_at_the_first_failed_write_and_resumes PROPERTIES
  TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS slow ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# SIGKILL at random moments, resume, repeat: the same bytes as an uninterrupted run.
add_test(NAME killed_runs_resume_to_the_bytes_of_an_uninterrupted_run
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/crash.sh $<TARGET_FILE:mart>)
set_tests_properties(killed_runs_resume_to_the_bytes_of_an_uninterrupted_run PROPERTIES
  TIMEOUT 600 LABELS slow ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Every write of a checkpoint, a model and transcripts failing in turn (MART_FAULTS builds).
add_test(NAME every_failed_write_leaves_the_previous_state_and_a_clear_error
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults.sh $<TARGET_FILE:mart>)
set_tests_properties(every_failed_write_leaves_the_previous_state_and_a_clear_error PROPERTIES
  TIMEOUT 900 SKIP_RETURN_CODE 77 LABELS slow ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE;OMP_NUM_THREADS=1")
# mart's threads wait passively unless the user sets OMP_WAIT_POLICY (libgomp prints its
# settings with OMP_DISPLAY_ENV).
add_test(NAME threads_wait_passively_by_default
  COMMAND sh -c "env -u OMP_WAIT_POLICY OMP_DISPLAY_ENV=true $<TARGET_FILE:mart> --version 2>&1 | grep -q \"OMP_WAIT_POLICY = 'PASSIVE'\" && OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=true $<TARGET_FILE:mart> --version 2>&1 | grep -q \"OMP_WAIT_POLICY = 'ACTIVE'\"")
