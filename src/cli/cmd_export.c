/* mart export: a model folder (config.json, safetensors, tokenizer.json) to one GGUF file that
 * llama.cpp, ollama and the tools built on GGUF load. */
#include "cli/cli.h"
#include "mart/gguf.h"

#include <string.h>

int cmd_export(int argc, char **argv) {
    const char *model_dir = NULL, *tok_path = NULL, *format = "gguf", *out = NULL, *dtype = "bf16",
               *name = NULL;
    cli_opt opts[] = {
        {"model", CLI_STR, &model_dir, "model directory (config.json, model.safetensors)"},
        {"tokenizer", CLI_STR, &tok_path, "tokenizer.json or its directory (default: --model)"},
        {"format", CLI_STR, &format, "output format (gguf)"},
        {"out", CLI_STR, &out, "output file"},
        {"dtype", CLI_STR, &dtype,
         "weight matrices: f32, bf16 or q8_0 (norms and biases stay f32)"},
        {"name", CLI_STR, &name, "general.name (default: the model folder's name)"},
    };
    int pr = cli_parse("export", "--model DIR --out FILE [--format gguf] [--dtype f32|bf16|q8_0]",
                       "Writes the model and its tokenizer as a GGUF file (architectures qwen2 "
                       "and llama; tokenizer model gpt2 or llama with tokens, types, merges or "
                       "scores, special ids and chat template).",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    if (!model_dir || !out) {
        fprintf(stderr, "mart export: --model and --out are required\n");
        return 2;
    }
    if (strcmp(format, "gguf")) {
        fprintf(stderr, "mart export: --format '%s': only gguf is supported\n", format);
        return 2;
    }
    gguf_dtype dt;
    if (!strcmp(dtype, "f32"))
        dt = GGUF_F32;
    else if (!strcmp(dtype, "bf16"))
        dt = GGUF_BF16;
    else if (!strcmp(dtype, "q8_0"))
        dt = GGUF_Q8_0;
    else {
        fprintf(stderr, "mart export: --dtype '%s': expected f32, bf16 or q8_0\n", dtype);
        return 2;
    }
    if (!name) {
        size_t l = strlen(model_dir);
        while (l > 1 && model_dir[l - 1] == '/')
            l--;
        const char *s = model_dir + l;
        while (s > model_dir && s[-1] != '/')
            s--;
        static char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(model_dir + l - s), s);
        name = base;
    }
    mart_err err = {{0}};
    tok_tokenizer *tok = NULL;
    model *m = NULL;
    int status = 0;
    if (tok_load(tok_path ? tok_path : model_dir, &tok, &err) != MART_OK ||
        model_load(model_dir, false, &m, &err) != MART_OK ||
        gguf_export(m, tok, name, dt, out, &err) != MART_OK)
        status = cli_error("export", &err);
    model_free(m);
    tok_free(tok);
    return status;
}
