# Tokenizer parity against the transformers.js reference (installs the pinned npm package on
# first run; skipped when node/npm are missing).
add_test(NAME tok_parity_js COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/ref/tok/parity.sh $<TARGET_FILE:mart>)
set_tests_properties(tok_parity_js PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
# test_tok also runs the reference on a tokenizer.json that mart wrote, when the package is there.
if(TEST test_tok)
  set_tests_properties(test_tok PROPERTIES DEPENDS tok_parity_js)
endif()
