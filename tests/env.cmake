# test_env compares prompt/feedback ids with the transformers.js reference on Qwen's
# tokenizer.json once tok_parity_js has installed the reference package; run it after that.
set_tests_properties(test_env PROPERTIES DEPENDS tok_parity_js)
