// tests/fuzz/fuzz_llama2c.c: dq_convert on a llama2.c .bin checkpoint holding the fuzz input,
// with the repo's tokenizer (models/tok512.bin, or $FUZZ_TOKENIZER). A conversion that fails
// must leave neither the output nor its temporary file behind.
#include "fuzz_common.h"
#include "convert.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *tokp = fz_data("FUZZ_TOKENIZER", "models/tok512.bin");
    char in[300], out[300], tmp[300];
    fz_path(in, sizeof in, "model.bin");
    fz_path(out, sizeof out, "out.dynq");
    fz_path(tmp, sizeof tmp, "out.dynq.tmp.1");
    fz_write(in, data, size);
    dq_convert_opts o = {.input = in, .tokenizer = tokp ? tokp : "/nonexistent", .out = out, .tmp = tmp,
                         .wtype = (size & 1) ? DQ_WTYPE_F32 : DQ_WTYPE_INT8};
    dq_err e = {0};
    int rc = dq_convert(&o, &e);
    if (access(tmp, F_OK) == 0) {
        fprintf(stderr, "temporary file left behind (rc %d)\n", rc);
        abort();
    }
    if (rc == DQ_OK) {
        dq_model m;  // what convert wrote must load
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
