// tests/check.h: the reporting every C test shares: one line per check, "ok NAME" or
// "FAIL NAME: why" (tests/run.sh counts them); `failures` decides the exit status.
#ifndef DYNQ_TEST_CHECK_H
#define DYNQ_TEST_CHECK_H
#include <stdio.h>

static int failures;

#define CHECK(name, cond, ...)                     \
    do {                                           \
        if (cond) printf("ok %s\n", name);         \
        else {                                     \
            printf("FAIL %s: ", name);             \
            printf(__VA_ARGS__);                   \
            printf("\n");                          \
            failures++;                            \
        }                                          \
    } while (0)

#endif
