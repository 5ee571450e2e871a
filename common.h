// common.h: what every dynq module shares: status codes (which are also the
// process exit codes), an error value that carries a one-line message, and a
// few overflow-safe size helpers. Library code returns a status; only main.c
// prints and exits.
#ifndef DYNQ_COMMON_H
#define DYNQ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DYNQ_VERSION "0.1.0"

// Status codes double as exit codes (documented in README and --help).
enum {
    DQ_OK = 0,
    DQ_EUSAGE = 1,   // bad command line
    DQ_EFILE = 2,    // unreadable or invalid model / input file
    DQ_ECTX = 3,     // context overflow
    DQ_ENOMEM = 4,   // out of memory
    DQ_EGATE = 5,    // perplexity quality gate not met
};

// An error: status code plus a one-line message naming the file and the problem.
// `where` records the source line that raised it (for debugging, not printed by default).
typedef struct dq_err {
    int code;
    int line;
    const char *src;
    char msg[512];
} dq_err;

// Sets *e (if non-NULL) and returns code, so callers can `return DQ_ERR(e, DQ_EFILE, "...")`.
int dq_seterr_(dq_err *e, int code, const char *src, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define DQ_ERR(e, code, ...) dq_seterr_((e), (code), __FILE__, __LINE__, __VA_ARGS__)

// Internal invariant: prints expression, file and line, then aborts. Not for input errors.
#define DQ_ASSERT(x)                                                                  \
    do {                                                                              \
        if (!(x)) dq_assert_fail_(#x, __FILE__, __LINE__);                            \
    } while (0)
void dq_assert_fail_(const char *expr, const char *file, int line) __attribute__((noreturn));

// Overflow-safe arithmetic: return 0 on success, 1 on overflow.
static inline int dq_mul_size(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }
static inline int dq_add_size(size_t a, size_t b, size_t *out) { return __builtin_add_overflow(a, b, out); }
// Is [off, off+len) inside a buffer of `size` bytes? Overflow-safe.
static inline int dq_range_ok(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

// 64-byte aligned allocation (zeroed); NULL on failure. Free with dq_free.
void *dq_alloc(size_t bytes);
void dq_free(void *p);
// The same for a large buffer read in long sweeps (the KV cache): from 2 MiB up, in 2 MiB pages
// where the kernel allows (common.c), in a mapping of its own (*mapped = 1) where dq_big_pages
// says so (2 MiB and up), else dq_alloc's (*mapped = 0; always under AddressSanitizer, whose
// redzones only heap blocks get). Free with dq_free_big and the same size and flag.
int dq_big_pages(size_t bytes);
void *dq_alloc_big(size_t bytes, int *mapped);
void dq_free_big(void *p, size_t bytes, int mapped);

// Monotonic time in seconds.
double dq_now(void);
// v[0..n) in increasing order (benchmark timings: no NaNs); dq_median sorts v and returns its
// median (the mean of the middle two for an even n; 0 for n = 0).
void dq_sort_doubles(double *v, size_t n);
double dq_median(double *v, size_t n);

// Whole-file read (malloc'd, NUL-terminated beyond size). Returns status.
int dq_read_file(const char *path, uint8_t **data, size_t *size, dq_err *e);
// The same for an open stream (e.g. stdin); `what` names it in errors.
int dq_read_stream(FILE *f, const char *what, uint8_t **data, size_t *size, dq_err *e);



// Maps a whole regular file read-only; files shorter than min_size (or empty) are an error.
// Files of 2 MiB and more are mapped 2 MiB-aligned with MADV_HUGEPAGE. keep_fd: NULL, or
// receives the open descriptor (the caller closes it), for dq_map_rehuge.
int dq_map_file(const char *path, size_t min_size, const uint8_t **data, size_t *size, int *keep_fd, dq_err *e);
// Maps every 2 MiB block of such a mapping now (reading from disk what the page cache lacks), and
// blocks that the page cache holds in smaller pages are dropped from it and read again, into
// 2 MiB pages where the kernel does that (common.c, "re-reading"), until `budget` seconds have
// gone (the disk's speed decides; a later call goes on). Returns the bytes read again. *cannot
// is set where later calls would be of no use: the kernel cannot tell which blocks those are (no
// PAGEMAP_SCAN), huge pages are off, data is not 2 MiB-aligned or under 2 MiB, or blocks read
// again came back in small pages (this filesystem); else cleared.
size_t dq_map_rehuge(int fd, const uint8_t *data, size_t size, double budget, int *cannot);
void dq_unmap_file(const uint8_t *data, size_t size);
// Fraction of the mapping that holds data (a dq_map_file mapping, or a dq_alloc_big buffer of
// size bytes) that the kernel maps in 2 MiB pages right now, from /proc/self/smaps: file pages
// (FilePmdMapped) or anonymous ones (AnonHugePages) over the whole mapping, which for
// neighbouring dq_alloc_big buffers the kernel may have merged into one (only pages touched so
// far count); -1 where it cannot tell.
double dq_map_huge_fraction(const uint8_t *data, size_t size);

// Length (1..4) of the well-formed UTF-8 character at s[0..n), or 0 if it is ill-formed
// (overlong, surrogate, above U+10FFFF, truncated).
size_t dq_utf8_len(const unsigned char *s, size_t n);

// SHA-256 of a byte range, and of a whole file (hex, 65 bytes with NUL), for provenance.
void dq_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
void dq_sha256_hex(const uint8_t *data, size_t len, char hex[65]);
// Progress callback of long library operations (conversion, perplexity): done of total steps.
typedef void (*dq_progress_fn)(void *ud, int done, int total);

#endif
