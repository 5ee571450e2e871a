// tests/fuzz/fuzz_safetensors.c: dq_convert on a Hugging Face directory whose config.json and
// model.safetensors (or model.safetensors.index.json + shards) come from the fuzz input.
// Input layout: u8 mode, u32 LE config length, config.json, then the safetensors bytes.
// mode bit 0: also write an index.json naming two shards (the second a copy of the first).
// The tokenizer is models/tok512.bin (or $FUZZ_TOKENIZER), so a 512-word vocabulary converts.
#include "fuzz_common.h"
#include "convert.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    int mode = data[0];
    uint32_t clen;
    memcpy(&clen, data + 1, 4);
    if (clen > size - 5) return 0;
    const uint8_t *cfg = data + 5, *st = data + 5 + clen;
    size_t st_len = size - 5 - clen;
    const char *tokp = fz_data("FUZZ_TOKENIZER", "models/tok512.bin");
    char dir[300], p[400], out[300], tmp[300];
    fz_path(dir, sizeof dir, "hf");
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/config.json", dir);
    fz_write(p, cfg, clen);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    unlink(p);
    if (mode & 1) {
        static const char idx[] = "{\"metadata\":{},\"weight_map\":{\"a\":\"model-1.safetensors\","
                                  "\"b\":\"model-2.safetensors\",\"c\":\"model-1.safetensors\"}}";
        fz_write(p, (const uint8_t *)idx, sizeof idx - 1);
        snprintf(p, sizeof p, "%s/model-1.safetensors", dir);
        fz_write(p, st, st_len);
        snprintf(p, sizeof p, "%s/model-2.safetensors", dir);
        static const char empty[] = "\x02\0\0\0\0\0\0\0{}";
        fz_write(p, (const uint8_t *)empty, sizeof empty - 1);
    } else {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        fz_write(p, st, st_len);
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
