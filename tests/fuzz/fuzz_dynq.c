// tests/fuzz/fuzz_dynq.c: the .dynq loader (dq_model_load) on a file holding the fuzz input.
// The header checksum would stop almost every mutation at the first check, so when the
// header's section ranges are in bounds the harness re-computes the FNV-1a checksum the way
// docs/FORMAT.md defines it (the bad-checksum rejection itself is tested by
// tests/test_malformed.sh). Byte 0 of the input is a mode: bit 0 set = keep the checksum as is.
#include "fuzz_common.h"
#include "model.h"

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
static int in(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

// Header field offsets (model.c enum H_*).
enum { H_NTENS = 12, H_DIROFF = 72, H_TOKOFF = 80, H_TOKSIZE = 88, H_METAOFF = 96, H_METASIZE = 104, H_CHECKSUM = 128 };

static void fix_checksum(uint8_t *f, size_t size) {
    if (size < DQ_HEADER_SIZE) return;
    uint64_t nt = rd32(f + H_NTENS), dir = rd64(f + H_DIROFF), to = rd64(f + H_TOKOFF), ts = rd64(f + H_TOKSIZE),
             mo = rd64(f + H_METAOFF), ms = rd64(f + H_METASIZE);
    if (!in(dir, nt * DQ_DIRENT_SIZE, size) || !in(to, ts, size) || !in(mo, ms, size)) return;
    memset(f + H_CHECKSUM, 0, 8);
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, f, DQ_HEADER_SIZE);
    h = fnv1a(h, f + dir, nt * DQ_DIRENT_SIZE);
    h = fnv1a(h, f + to, ts);
    h = fnv1a(h, f + mo, ms);
    memcpy(f + H_CHECKSUM, &h, 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int keep = data[0] & 1;
    uint8_t *f = malloc(size);
    memcpy(f, data + 1, size - 1);
    if (!keep) fix_checksum(f, size - 1);
    char path[300];
    fz_path(path, sizeof path, "model.dynq");
    fz_write(path, f, size - 1);
    free(f);
    dq_model m;
    dq_err e = {0};
    int rc = dq_model_load(&m, path, &e);
    if (rc == DQ_OK) {
        // A model that loads must be usable: one forward step with a tiny context.
        dq_state s;
        if (dq_state_alloc(&s, &m, 4, 1, 1, (dq_act_scheme)0, DQ_KV_F16, DQ_KV_Q8, &e) == DQ_OK) {
            int32_t tok = 1 % (int32_t)m.c.vocab;
            if (dq_forward(&m, &s, &tok, 1, 0, DQ_LOGITS_LAST, &e) != DQ_OK) abort();
            dq_state_free(&s);
        }
        dq_model_free(&m);
    } else if (rc != DQ_EFILE && rc != DQ_ENOMEM) {
        fprintf(stderr, "unexpected status %d: %s\n", rc, e.msg);
        abort();
    } else if (e.msg[0] == 0 || strchr(e.msg, '\n') || !strstr(e.msg, path)) {
        fprintf(stderr, "error message does not name the file: %s\n", e.msg);
        abort();
    }
    return 0;
}
