// tests/fuzz/fuzz_cli.c: main.c's command-line parser. main.c is compiled with
// -Dmain=dynq_main (see fuzz.mk); the input is split at NUL bytes into up to 24 arguments.
// Runs in a private scratch directory that holds no model, and '/' is replaced in every
// argument so that convert's -o can never write outside it. stdout goes to /dev/null.
#include "fuzz_common.h"

int dynq_main(int argc, char **argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    if (!freopen("/dev/null", "w", stdout)) abort();
    if (!freopen("/dev/null", "r", stdin)) abort();
    unsetenv("DYNQ_MODEL");
    if (chdir(fz_tmpdir()) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[26];
    int argc = 0;
    argv[argc++] = "dynq";
    for (size_t i = 0; i <= size && argc < 25;) {
        char *s = buf + i;
        size_t l = strlen(s);
        for (size_t j = 0; j < l; j++)
            if (s[j] == '/') s[j] = '_';
        argv[argc++] = s;
        i += l + 1;
    }
    argv[argc] = NULL;
    // Copy each argument to its own exact-size allocation so overreads are caught.
    for (int i = 1; i < argc; i++) argv[i] = strdup(argv[i]);
    int rc = dynq_main(argc, argv);
    if (rc < 0 || rc > 5) abort();
    for (int i = 1; i < argc; i++) free(argv[i]);
    free(buf);
    return 0;
}
