// common.c: error values, aligned allocation, time and whole-file reads shared by every module.
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int dq_seterr_(dq_err *e, int code, const char *src, int line, const char *fmt, ...) {
    if (!e) return code;
    e->code = code;
    e->src = src;
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    // One line, whatever a file put into the strings it names: control characters become '?'.
    for (char *p = e->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return code;
}

void dq_assert_fail_(const char *expr, const char *file, int line) {
    fprintf(stderr, "dynq: internal error: assertion `%s' failed at %s:%d\n", expr, file, line);
    abort();
}

void *dq_alloc(size_t bytes) {
    void *p = NULL;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n < bytes) return NULL;
    if (n == 0) n = 64;
    if (posix_memalign(&p, 64, n) != 0) return NULL;
    memset(p, 0, n);
    return p;
}

void dq_free(void *p) { free(p); }

// Buffers of 2 MiB or more: a 2 MiB-aligned anonymous mapping with MADV_HUGEPAGE (where
// transparent huge pages are "madvise", as on these Debian VMs, nothing else gets them), each
// page written once now, as dq_alloc's memset touches every page: the faults happen here, not in
// the first token that reaches a page, and a cache too big for the machine fails here.
#define BIG_PAGE ((size_t)2 << 20)
// Not under AddressSanitizer: it puts redzones around heap blocks but not around mappings, and
// the sanitizer run should still catch a write past the end of the cache.
#if defined(__SANITIZE_ADDRESS__)
#define BIG_MAPPED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BIG_MAPPED 0
#endif
#endif
#ifndef BIG_MAPPED
#define BIG_MAPPED 1
#endif
int dq_big_pages(size_t bytes) { return BIG_MAPPED && bytes >= BIG_PAGE; }
// A fresh anonymous mapping (prot) of len bytes (len <= SIZE_MAX - 2 * BIG_PAGE) that starts on
// a 2 MiB boundary: len + 2 MiB reserved, the slack on either side unmapped. NULL on failure.
static uint8_t *map_aligned(size_t len, int prot) {
    const size_t span = (len + 4095) & ~(size_t)4095;
    uint8_t *r = mmap(NULL, span + BIG_PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)r + BIG_PAGE - 1) & ~(uintptr_t)(BIG_PAGE - 1));
    const size_t head = (size_t)(a - r);
    if (head) munmap(r, head);
    if (BIG_PAGE - head) munmap(a + span, BIG_PAGE - head);
    return a;
}

static void advise_huge(void *p, size_t len) {
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE);
#else
    (void)p, (void)len;
#endif
}

// A dq_alloc_big buffer's mapping: whole 2 MiB pages.
static size_t big_len(size_t bytes) { return (bytes + BIG_PAGE - 1) & ~(BIG_PAGE - 1); }

void *dq_alloc_big(size_t bytes, int *mapped) {
    *mapped = 0;
    if (!dq_big_pages(bytes)) return dq_alloc(bytes);
    if (bytes > SIZE_MAX - 2 * BIG_PAGE) return NULL;
    const size_t len = big_len(bytes);
    uint8_t *a = map_aligned(len, PROT_READ | PROT_WRITE);
    if (!a) return NULL;
    advise_huge(a, len);
    for (size_t i = 0; i < len; i += 4096) ((volatile uint8_t *)a)[i] = 0;
    *mapped = 1;
    return a;
}

void dq_free_big(void *p, size_t bytes, int mapped) {
    if (!p) return;
    if (mapped) munmap(p, big_len(bytes));
    else dq_free(p);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void dq_sort_doubles(double *v, size_t n) {
    if (n > 1) qsort(v, n, sizeof *v, cmp_double);
}

double dq_median(double *v, size_t n) {
    if (!n) return 0.0;
    dq_sort_doubles(v, n);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double dq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dq_read_stream(FILE *f, const char *what, uint8_t **data, size_t *size, dq_err *e) {
    *data = NULL;
    *size = 0;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", what);
    for (;;) {
        if (n == cap) {
            size_t nc = cap * 2;
            uint8_t *nb = (nc > cap) ? realloc(buf, nc + 1) : NULL;
            if (!nb) {
                free(buf);
                return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", what);
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        return DQ_ERR(e, DQ_EFILE, "%s: read error", what);
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return DQ_OK;
}

int dq_read_file(const char *path, uint8_t **data, size_t *size, dq_err *e) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return DQ_ERR(e, DQ_EFILE, "%s: cannot open: %s", path, strerror(errno));
    int rc = dq_read_stream(f, path, data, size, e);
    fclose(f);
    return rc;
}

// ---------------------------------------------------------------- SHA-256 (FIPS 180-4)

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void dq_sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) sha_block(h, data + i);
    uint8_t tail[128] = {0};
    size_t r = len - i;
    memcpy(tail, data + i, r);
    tail[r] = 0x80;
    size_t tl = r + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int j = 0; j < 8; j++) tail[tl - 1 - j] = (uint8_t)(bits >> (8 * j));
    for (size_t j = 0; j < tl; j += 64) sha_block(h, tail + j);
    for (int j = 0; j < 8; j++)
        for (int b = 0; b < 4; b++) out[4 * j + b] = (uint8_t)(h[j] >> (24 - 8 * b));
}

void dq_sha256_hex(const uint8_t *data, size_t len, char hex[65]) {
    uint8_t d[32];
    dq_sha256(data, len, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

// ---------------------------------------------------------------- read-only mappings

// ---- re-reading a mapped file's small pages into 2 MiB ones (dq_map_rehuge)
// The page cache keeps a file in the folios it was filled with: pages cached by writing it (a
// download, `cp`) are 4 KiB ones, and so are parts read back after the kernel reclaimed them
// piecemeal. A mapping of those takes a TLB miss every 4 KiB however it is advised, for as long as
// the pages stay cached (the kernel here has no CONFIG_READ_ONLY_THP_FOR_FS, so neither
// khugepaged nor MADV_COLLAPSE merges file pages). Decode streams every weight: one thread of
// stories110M's shape ran 6-9 % slower from such a file (docs/PERFORMANCE.md, "The model file
// read again into 2 MiB pages").
// So each 2 MiB block of the mapping is touched, and where the kernel maps it in smaller
// pages (PAGEMAP_SCAN, Linux 6.7 and later, reports which), this mapping lets go of the block,
// the block's clean pages are dropped from the page cache and the block is read again through the
// aligned MADV_HUGEPAGE mapping, which makes one 2 MiB folio of it. The bytes are the file's
// either way. Costs: the block's re-read from disk, once (later loads find the 2 MiB folios);
// pages that another process maps stay as they are.
// The ioctl's interface (linux/fs.h of Linux 6.7; Debian 12's headers predate it).
struct dq_page_region {
    uint64_t start, end, categories;
};
struct dq_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define DQ_PAGEMAP_SCAN _IOWR('f', 16, struct dq_pm_scan_arg)
#define DQ_PAGE_IS_PRESENT (1u << 3)
#define DQ_PAGE_IS_HUGE (1u << 6)

// 1 if some page of [p, p + len) is mapped and not as part of a huge page, 0 if none is, -1 if
// the kernel cannot tell (no PAGEMAP_SCAN).
static int small_pages(int pagemap, const uint8_t *p, size_t len) {
    struct dq_page_region r[1];
    memset(r, 0, sizeof r);  // written by the kernel, which tools such as valgrind do not know
    struct dq_pm_scan_arg a = {
        .size = sizeof a,
        .start = (uintptr_t)p,
        .end = (uintptr_t)p + len,
        .vec = (uintptr_t)r,
        .vec_len = 1,
        .category_inverted = DQ_PAGE_IS_HUGE,  // pages present and not huge
        .category_mask = DQ_PAGE_IS_HUGE | DQ_PAGE_IS_PRESENT,
        .return_mask = DQ_PAGE_IS_HUGE | DQ_PAGE_IS_PRESENT,
    };
    const int n = ioctl(pagemap, DQ_PAGEMAP_SCAN, &a);
    return n < 0 ? -1 : n > 0;
}

// Transparent huge pages switched off altogether: no block could come back in 2 MiB pages.
static int thp_never(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return 0;
    char line[128] = "";
    const int never = fgets(line, sizeof line, f) && strstr(line, "[never]");
    fclose(f);
    return never;
}

// 1 if a page of the 2 MiB block at p is in the page cache (mincore reports the cache for file
// mappings this process could write to, otherwise the pages it maps itself), 0 if none is.
static int cached(const uint8_t *p) {
    unsigned char v[BIG_PAGE / 4096];
    if (mincore((void *)p, BIG_PAGE, v) != 0) return 1;
    for (size_t i = 0; i < sizeof v; i++)
        if (v[i] & 1) return 1;
    return 0;
}

size_t dq_map_rehuge(int fd, const uint8_t *p, size_t len, double budget, int *cannot) {
    *cannot = 1;
    if (fd < 0 || !p || ((uintptr_t)p & (BIG_PAGE - 1))) return 0;  // not dq_map_file's aligned mapping
    const size_t whole = len & ~(BIG_PAGE - 1);  // a last partial block cannot be one 2 MiB page
    if (!whole || thp_never()) return 0;
    const int pm = open("/proc/self/pagemap", O_RDONLY);
    if (pm < 0) return 0;
    *cannot = 0;
    size_t reread = 0;
    const double t0 = dq_now();
    // A block now and then comes back in small pages here: one that the page cache had lost
    // entirely, next to one it held in small pages (4 of 18 in one pass over TinyLlama's file
    // after the host's DAMON had paged out parts of it); a second pass takes most of them.
    for (int pass = 0, failed = 1; pass < 2 && failed; pass++) {
        int bad_run = 0;
        failed = 0;
        for (size_t off = 0; off < whole; off += BIG_PAGE) {
            const uint8_t *b = p + off;
            (void)*(const volatile uint8_t *)b;  // maps the block: in one 2 MiB page if it is one
            const int s = small_pages(pm, b, BIG_PAGE);
            if (s < 0) {  // a kernel without PAGEMAP_SCAN
                *cannot = 1;
                goto done;
            }
            if (!s) continue;
            // Unmapped from this process (a private mapping of a file it never wrote to: it holds
            // no copies of its own), dropped from the cache, read again. Pages that cannot be
            // dropped stay (dirty ones: a file written moments ago, whose write-back fadvise
            // starts, so a later load finds them clean; pages another process maps).
            if (madvise((void *)b, BIG_PAGE, MADV_DONTNEED) != 0) goto done;
            (void)posix_fadvise(fd, (off_t)off, (off_t)BIG_PAGE, POSIX_FADV_DONTNEED);
            const int dropped = !cached(b);
            (void)*(const volatile uint8_t *)b;
            if (!dropped) continue;
            reread += BIG_PAGE;
            if (dq_now() - t0 > budget) goto done;  // a slow disk: later calls go on
            // Read in small pages again, four blocks in a row: this kernel or filesystem does
            // not read files into 2 MiB folios; stop.
            if (small_pages(pm, b, BIG_PAGE) == 0) bad_run = 0;
            else if (failed++, ++bad_run >= 4) {
                *cannot = 1;
                goto done;
            }
        }
    }
done:
    close(pm);
    return reread;
}

int dq_map_file(const char *path, size_t min_size, const uint8_t **data, size_t *size, int *keep_fd, dq_err *e) {
    *data = NULL;
    *size = 0;
    if (keep_fd) *keep_fd = -1;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return DQ_ERR(e, DQ_EFILE, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return DQ_ERR(e, DQ_EFILE, "%s: not a regular file", path);
    }
    if (st.st_size == 0 || (uint64_t)st.st_size < min_size) {
        close(fd);
        return DQ_ERR(e, DQ_EFILE, "%s: file too short (%lld bytes)", path, (long long)st.st_size);
    }
    // 2 MiB-aligned, with MADV_HUGEPAGE: where the kernel caches the file in 2 MiB folios (Linux
    // 6.x reads them in for such a mapping, ext4 among others), each maps with one TLB entry
    // instead of 512; decode streams every weight, and its TLB misses in 4 KiB pages cost it 4-7 %
    // here (docs/PERFORMANCE.md, "Huge pages"). Elsewhere the mapping is the plain one.
    const size_t len = (size_t)st.st_size;
    void *p = MAP_FAILED;
    if (len >= BIG_PAGE && len <= SIZE_MAX - 2 * BIG_PAGE) {
        uint8_t *a = map_aligned(len, PROT_NONE);  // a reservation, then the file over it
        if (a) {
            p = mmap(a, len, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
            if (p == MAP_FAILED) munmap(a, len);
            else advise_huge(p, len);
        }
    }
    if (p == MAP_FAILED) p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED || !keep_fd) close(fd);
    if (p == MAP_FAILED) return DQ_ERR(e, DQ_EFILE, "%s: cannot map: %s", path, strerror(errno));
    if (keep_fd) *keep_fd = fd;
    *data = p;
    *size = len;
    return DQ_OK;
}

double dq_map_huge_fraction(const uint8_t *data, size_t size) {
    FILE *f = size ? fopen("/proc/self/smaps", "r") : NULL;
    if (!f) return -1.0;
    char line[512];
    int in = 0;
    unsigned long span = 0, anon = 0;
    double frac = -1.0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, kb;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's first line: its range
            in = lo <= (uintptr_t)data && (uintptr_t)data < hi, span = hi - lo, anon = 0;
            continue;
        }
        if (in && sscanf(line, "AnonHugePages: %lu kB", &kb) == 1) anon = kb;
        if (in && sscanf(line, "FilePmdMapped: %lu kB", &kb) == 1) {  // after AnonHugePages
            frac = (double)(anon + kb) * 1024.0 / (double)span;
            break;
        }
    }
    fclose(f);
    return frac;
}

void dq_unmap_file(const uint8_t *data, size_t size) {
    if (data) munmap((void *)data, size);
}

// ---------------------------------------------------------------- UTF-8

size_t dq_utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

