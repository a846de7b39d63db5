# demo: `mart demo --quick` runs every stage (tasks, pretrain, RL single + multi, eval, plots)
# and its outputs have the documented shape. The numbers are not checked: the quick run is
# far too short to mean anything (the full demo is a benchmark, see docs/DEMO.md).
#
# This file has two modes: included from tests/CMakeLists.txt it registers the test; run
# with `cmake -P` (what the test does) it runs the demo and checks the outputs.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_test(NAME demo_quick_runs_every_stage_and_writes_results
    COMMAND ${CMAKE_COMMAND} -DMART_BIN=$<TARGET_FILE:mart>
            -DOUT=${CMAKE_CURRENT_BINARY_DIR}/demo_quick -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(demo_quick_runs_every_stage_and_writes_results PROPERTIES
    TIMEOUT 180 ENVIRONMENT "OMP_NUM_THREADS=1;MART_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  return()
endif()

file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${MART_BIN} demo --quick --out ${OUT} --seed 1
  RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mart demo --quick exited ${rc}\n--- stdout\n${stdout}\n--- stderr\n${stderr}")
endif()

foreach(f data/train.jsonl data/test.jsonl data/sft.jsonl
          base/config.json base/model.safetensors base/tokenizer.json base/metrics.jsonl
          single/metrics.jsonl multi/metrics.jsonl single/final/config.json
          multi/final/config.json eval_single/results.json eval_multi/results.json
          eval_base/results.json
          results.json attempts.svg attempts.png learning_curves.svg learning_curves.png)
  if(NOT EXISTS ${OUT}/${f})
    message(FATAL_ERROR "mart demo --quick did not write ${f}\n${stderr}")
  endif()
endforeach()

file(READ ${OUT}/results.json res)
foreach(model single multi base)
  foreach(k 1 2 3 4 5)
    string(JSON acc ERROR_VARIABLE jerr GET "${res}" ${model} accuracy ${k})
    if(jerr)
      message(FATAL_ERROR "results.json: ${model}.accuracy.${k}: ${jerr}\n${res}")
    endif()
    if(acc LESS 0 OR acc GREATER 1)
      message(FATAL_ERROR "results.json: ${model}.accuracy.${k} = ${acc} is not a fraction")
    endif()
  endforeach()
endforeach()

# accuracy within k attempts can only grow with k
foreach(model single multi)
  string(JSON a1 GET "${res}" ${model} accuracy 1)
  string(JSON a5 GET "${res}" ${model} accuracy 5)
  if(a5 LESS a1)
    message(FATAL_ERROR "results.json: ${model}: accuracy at 5 attempts (${a5}) below 1 (${a1})")
  endif()
endforeach()

foreach(want "multi-attempt task" "single-turn task" "(base, before RL)" "gain 1->2")
  string(FIND "${stdout}" "${want}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "the demo's table lacks '${want}':\n${stdout}")
  endif()
endforeach()
foreach(want "$ mart tasks" "$ mart pretrain" "$ mart train" "--task single" "--task multi"
             "$ mart eval" "--repeat-question")
  string(FIND "${stderr}" "${want}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "the demo did not show the stage command '${want}'")
  endif()
endforeach()
file(REMOVE_RECURSE ${OUT})
