// tests/fuzz/fuzz_safetensors.c: dq_convert on a Hugging Face directory whose config.json and
// model.safetensors, or model.safetensors.index.json and two shards, come from the fuzz input.
// Input layout: u8 mode, u32 LE config length, config.json, then
//   mode bit 0 clear: the model.safetensors bytes;
//   mode bit 0 set:   u32 LE index length, model.safetensors.index.json, u32 LE length, the bytes of
//                     model-1.safetensors, then the rest: model-2.safetensors. The index is fuzzed like
//                     the rest (shard names, weight_map shape, tensors listed in the wrong shard...).
// mode bit 1: convert to F32 instead of INT8.
// The tokenizer is models/tok512.bin (or $FUZZ_TOKENIZER), so a 512-word vocabulary converts.
#include "fuzz_common.h"
#include "convert.h"
#include "model.h"

// Reads a u32 LE length and that many bytes from [*p, end); 0 if the input is too short.
static int take(const uint8_t **p, const uint8_t *end, const uint8_t **out, size_t *len) {
    uint32_t n;
    if ((size_t)(end - *p) < 4) return 0;
    memcpy(&n, *p, 4);
    *p += 4;
    if (n > (size_t)(end - *p)) return 0;
    *out = *p;
    *len = n;
    *p += n;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0];
    const uint8_t *p = data + 1, *end = data + size, *cfg, *idx = NULL, *st1 = NULL;
    size_t clen, ilen = 0, st1_len = 0;
    if (!take(&p, end, &cfg, &clen)) return 0;
    if ((mode & 1) && (!take(&p, end, &idx, &ilen) || !take(&p, end, &st1, &st1_len))) return 0;
    const char *tokp = fz_data("FUZZ_TOKENIZER", "models/tok512.bin");
    char dir[300], path[400], out[300], tmp[300];
    fz_path(dir, sizeof dir, "hf");
    mkdir(dir, 0700);
    // Remove the previous input's files so that every run sees only its own.
    static const char *const files[] = {"model.safetensors", "model.safetensors.index.json", "model-1.safetensors",
                                        "model-2.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    fz_write(path, cfg, clen);
    if (mode & 1) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        fz_write(path, idx, ilen);
        snprintf(path, sizeof path, "%s/model-1.safetensors", dir);
        fz_write(path, st1, st1_len);
        snprintf(path, sizeof path, "%s/model-2.safetensors", dir);
        fz_write(path, p, (size_t)(end - p));
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        fz_write(path, p, (size_t)(end - p));
    }
    fz_path(out, sizeof out, "out.dynq");
    fz_path(tmp, sizeof tmp, "out.dynq.tmp.1");
    dq_convert_opts o = {.input = dir, .tokenizer = tokp ? tokp : "/nonexistent", .out = out, .tmp = tmp,
                         .wtype = (mode & 2) ? DQ_WTYPE_F32 : DQ_WTYPE_INT8};
    dq_err e = {0};
    int rc = dq_convert(&o, &e);
    if (access(tmp, F_OK) == 0) {
        fprintf(stderr, "temporary file left behind (rc %d)\n", rc);
        abort();
    }
    if (rc == DQ_OK) {
        dq_model m;
        if (dq_model_load(&m, out, &e) != DQ_OK) {
            fprintf(stderr, "converted model does not load: %s\n", e.msg);
            abort();
        }
        dq_model_free(&m);
        unlink(out);
    } else {
        if (access(out, F_OK) == 0) abort();
        if (e.msg[0] == 0 || strchr(e.msg, '\n')) abort();
    }
    return 0;
}
