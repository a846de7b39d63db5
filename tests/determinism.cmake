# determinism: pretraining, PPO steps and a sampled evaluation give bit-identical files with
# 1, 2 and 3 OpenMP threads. The sizes are chosen so that the products are large enough to be
# split between threads (see kern_cpu.c) and every parallel loop runs in parallel.
#
# Two modes, as demo.cmake: included from tests/CMakeLists.txt it registers the test; run
# with `cmake -P` it runs the three pipelines and compares their outputs byte for byte.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_test(NAME results_do_not_depend_on_the_thread_count
    COMMAND ${CMAKE_COMMAND} -DMART_BIN=$<TARGET_FILE:mart>
            -DOUT=${CMAKE_CURRENT_BINARY_DIR}/determinism -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(results_do_not_depend_on_the_thread_count PROPERTIES
    TIMEOUT 600 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
  return()
endif()

function(run_stage threads)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env OMP_NUM_THREADS=${threads} ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "${cmd} (OMP_NUM_THREADS=${threads}) exited ${rc}\n${out}\n${err}")
  endif()
endfunction()

file(REMOVE_RECURSE ${OUT})
set(data ${OUT}/data)
run_stage(1 ${MART_BIN} tasks --out ${data} --seed 3 --n-train 64 --n-test 24 --n-sft 400)
foreach(t 1 2 3)
  set(d ${OUT}/t${t})
  run_stage(${t} ${MART_BIN} pretrain --data ${data}/sft.jsonl --out ${d}/base --steps 3
    --batch 24 --merges 96 --seed 5 --repeat-question)
  run_stage(${t} ${MART_BIN} train --model ${d}/base --data ${data}/train.jsonl --task multi
    --algo ppo --out ${d}/rl --steps 2 --rollout-batch 6 --n-samples 2 --mini-batch 6
    --max-tokens 48 --max-attempts 2 --kl-coef 0.05 --seed 7 --repeat-question --quiet)
  run_stage(${t} ${MART_BIN} eval --model ${d}/rl/final --bench ${data}/test.jsonl
    --attempts 1-2 --out ${d}/eval --max-tokens 48 --temperature 1 --seed 9 --repeat-question)
endforeach()

# Files whose every byte is a result (no timings): the models, the optimiser state, the
# transcripts; results.json and metrics.jsonl are compared without their timing fields.
foreach(f base/model.safetensors rl/final/model.safetensors rl/checkpoint/optimizer.safetensors
          rl/checkpoint/critic/model.safetensors eval/transcripts.jsonl eval/results.json)
  foreach(t 2 3)
    execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT}/t1/${f} ${OUT}/t${t}/${f}
      RESULT_VARIABLE diff)
    if(NOT diff EQUAL 0)
      message(FATAL_ERROR "${f} differs between 1 and ${t} threads")
    endif()
  endforeach()
endforeach()

# Metrics: every field but the timings and rates.
foreach(f base/metrics.jsonl rl/metrics.jsonl)
  foreach(t 1 2 3)
    file(READ ${OUT}/t${t}/${f} m)
    string(REGEX REPLACE "\"[a-z_]*(_s|_tok_s|seconds|eta)\":[-0-9.e+]*" "" m${t} "${m}")
  endforeach()
  foreach(t 2 3)
    if(NOT m1 STREQUAL m${t})
      message(FATAL_ERROR "${f} differs between 1 and ${t} threads:\n${m1}\n---\n${m${t}}")
    endif()
  endforeach()
endforeach()
