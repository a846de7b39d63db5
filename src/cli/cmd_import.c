/* mart import: a GGUF file (qwen2 or llama) back to a model folder mart and Hugging Face read
 * (config.json, model.safetensors); the tokenizer is not rebuilt from the GGUF metadata. */
#include "cli/cli.h"
#include "mart/gguf.h"

int cmd_import(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    cli_opt opts[] = {
        {"gguf", CLI_STR, &in, "GGUF file (F32, F16, BF16 or Q8_0 tensors)"},
        {"out", CLI_STR, &out, "model directory to write (config.json, model.safetensors)"},
    };
    int pr = cli_parse("import", "--gguf FILE --out DIR",
                       "Reads a GGUF model into config.json + model.safetensors in F32 (BF16 "
                       "and F16 values are exact in F32; Q8_0 weights are dequantised).",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    if (!in || !out) {
        fprintf(stderr, "mart import: --gguf and --out are required\n");
        return 2;
    }
    mart_err err = {{0}};
    model *m = NULL;
    int status = 0;
    if (gguf_import(in, &m, &err) != MART_OK || model_save(m, out, &err) != MART_OK)
        status = cli_error("import", &err);
    model_free(m);
    return status;
}
