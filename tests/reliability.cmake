# Faults for real: a full disk (a small tmpfs; skipped where it cannot be mounted).
add_test(NAME disk_full_stops_at_the_first_failed_write_and_resumes
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/disk_full.sh $<TARGET_FILE:mart>)
set_tests_properties(disk_full_stops_at_the_first_failed_write_and_resumes PROPERTIES
  TIMEOUT 300 SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# SIGKILL at random moments, resume, repeat: the same bytes as an uninterrupted run.
add_test(NAME killed_runs_resume_to_the_bytes_of_an_uninterrupted_run
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/crash.sh $<TARGET_FILE:mart>)
set_tests_properties(killed_runs_resume_to_the_bytes_of_an_uninterrupted_run PROPERTIES
  TIMEOUT 600 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
