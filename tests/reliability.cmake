# Faults for real: a full disk (a small tmpfs; skipped where it cannot be mounted).
add_test(NAME disk_full_stops_at_the_first_failed_write_and_resumes
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/disk_full.sh $<TARGET_FILE:mart>)
set_tests_properties(disk_full_stops_at_the_first_failed_write_and_resumes PROPERTIES
  TIMEOUT 300 SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
