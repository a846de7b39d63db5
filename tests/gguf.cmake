# GGUF export/import against an independent reader written from the format's specification.
add_test(NAME gguf_export COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gguf_export.sh $<TARGET_FILE:mart>)
set_tests_properties(gguf_export PROPERTIES TIMEOUT 300 DEPENDS tok_parity_js)
