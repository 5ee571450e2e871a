// tests/fuzz/fuzz_common.h: shared helpers for the libFuzzer harnesses: a private temporary
// directory per process, writing the fuzz input to a file there, and quiet stdio.
// Harnesses reach the library only through its public headers, like a caller would.
#ifndef DYNQ_FUZZ_COMMON_H
#define DYNQ_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Durability is not what is fuzzed: fsync would make every conversion wait for the disk
// (about 100x fewer executions), so the harness executable interposes a no-op.
int fsync(int fd);
int fdatasync(int fd);
int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }

// A per-process scratch directory (created once, removed at exit).
static char fz_dir[256];
static void fz_rmdir(void) {
    char cmd[300];
    if (fz_dir[0] && strncmp(fz_dir, "/tmp/dynq-fuzz.", 15) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir);
        if (system(cmd) != 0) fz_dir[0] = 0;
    }
}
__attribute__((unused)) static const char *fz_tmpdir(void) {
    if (!fz_dir[0]) {
        snprintf(fz_dir, sizeof fz_dir, "/tmp/dynq-fuzz.XXXXXX");
        if (!mkdtemp(fz_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fz_rmdir);
    }
    return fz_dir;
}

// Writes data to <tmpdir>/<name> and returns the path (static buffer per call site: copy it).
__attribute__((unused)) static int fz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return 0;
}
__attribute__((unused)) static void fz_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", fz_tmpdir(), name); }

// A repo-relative or env-given data file (tokenizers etc.); NULL if unreadable.
__attribute__((unused)) static const char *fz_data(const char *env, const char *dflt) {
    const char *p = getenv(env);
    if (!p) p = dflt;
    return access(p, R_OK) == 0 ? p : NULL;
}
__attribute__((unused)) static const char *fz_shared(char *buf, size_t cap, const char *rel) {
    const char *s = getenv("DYNQ_SHARED");
    snprintf(buf, cap, "%s/%s", s ? s : "../shared", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

#endif
