#!/usr/bin/env bash
# tests/test_hugepages.sh: the KV cache is in 2 MiB pages where the kernel gives anonymous
# mappings such pages, and a model that `dynq convert` has just written is mapped in 2 MiB pages
# when it is loaded, where the kernel can do that for this directory's filesystem.
# dq_map_file maps models 2 MiB-aligned with MADV_HUGEPAGE, and convert drops its output from the
# page cache after the fsync, so the first load reads the file back into 2 MiB folios; a file
# whose pages were cached by writing (here: a plain `cp`) is in 4 KiB ones until a load reads
# those blocks again (by default; DYNQ_FILE_HUGE=off leaves them).
# Whether the kernel can is asked independently first: Python writes a file, syncs it, drops it
# from the cache, maps it with MADV_HUGEPAGE, reads it and looks at its own FilePmdMapped in
# /proc/self/smaps. If that probe gets no 2 MiB page, the test skips (older kernels, tmpfs
# without huge pages, filesystems without large folios).
cd "$(dirname "$0")/.."
DYNQ=${DYNQ:-./dynq}
PY=/usr/bin/python3
if [ ! -x "$DYNQ" ]; then echo "skip hugepages: $DYNQ not built"; exit 0; fi
if ! "$PY" -c 'import numpy' 2> /dev/null; then echo "skip hugepages: numpy missing (scripts/random_model.py)"; exit 0; fi
T=$(mktemp -d "${DYNQ_TMP:-/tmp}/dynq-huge.XXXXXX")
trap 'rm -rf "$T"' EXIT
# 12.6 M parameters: a 13 MB int8 file, six 2 MiB pages and more
if ! "$PY" scripts/random_model.py --dim 512 --hidden 1376 --layers 4 --heads 8 --kv-heads 8 --vocab 512 --seq 64 \
        --seed 3 -o "$T/m.bin" > "$T/gen.log" 2>&1 ||
    ! "$DYNQ" convert "$T/m.bin" --tokenizer models/tok512.bin -o "$T/m.dynq" 2> "$T/conv.err"; then
    echo "FAIL hugepages_setup: $(tail -2 "$T/gen.log" "$T/conv.err" | tr '\n' ' ')"; exit 1
fi
# The KV cache (dq_alloc_big: 2 MiB-aligned anonymous mappings with MADV_HUGEPAGE, every page
# touched when the state is made) is in 2 MiB pages where this kernel gives them to an anonymous
# mapping that asks: asked independently first (Python maps 18 MiB with MADV_HUGEPAGE, writes
# every 4 KiB page and sums AnonHugePages over its mappings in /proc/self/smaps).
anon=$("$PY" - <<'EOF'
import mmap
m = mmap.mmap(-1, 18 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # shared ones are shmem
if hasattr(mmap, "MADV_HUGEPAGE"):
    m.madvise(mmap.MADV_HUGEPAGE)
for i in range(0, len(m), 4096):
    m[i] = 1
print(sum(int(l.split()[1]) for l in open("/proc/self/smaps") if l.startswith("AnonHugePages:")))
EOF
)
kvfrac() { "$DYNQ" bench -m "$T/m.dynq" "$@" -t 1 -r 1 --json 2> /dev/null | sed -n 's/.*"kv_2m_fraction": \([-0-9.]*\).*/\1/p'; }
# -d 300: 304 positions x 4 layers x 512 x 4 bytes = 2.4 MiB of keys, as much of values
if [ -n "${DYNQ_SANITIZED:-}" ]; then
    echo "skip hugepages_kv_cache: the sanitizer build keeps the cache on the heap, for its redzones (runs in make test)"
elif [ -n "$anon" ] && [ "$anon" -gt 0 ]; then
    k1=$(kvfrac -p 4 -n 4 -d 300)
    awk -v f="$k1" 'BEGIN { exit !(f >= 0.5) }' && echo "ok hugepages_kv_cache (kv_2m_fraction $k1; probe $anon kB)" \
        || echo "FAIL hugepages_kv_cache: kv_2m_fraction '$k1' (the probe got $anon kB in 2 MiB pages)"
else
    echo "skip hugepages_kv_cache: this kernel gave no 2 MiB page to an anonymous mapping (probe: '${anon}' kB)"
fi
# DYNQ_KV_HUGE=off, or a cache under 2 MiB: dq_alloc's memory, and the report says it cannot tell (-1).
k3=$(DYNQ_KV_HUGE=off kvfrac -p 4 -n 4 -d 300)
[ "$k3" = "-1.000" ] && echo "ok hugepages_kv_off" || echo "FAIL hugepages_kv_off: kv_2m_fraction '$k3'"
k2=$(kvfrac -p 4 -n 4)
[ "$k2" = "-1.000" ] && echo "ok hugepages_kv_small_unknown" || echo "FAIL hugepages_kv_small_unknown: kv_2m_fraction '$k2'"
probe=$("$PY" - "$T/probe" <<'EOF'
import mmap, os, sys
path, size = sys.argv[1], 16 << 20
with open(path, "wb") as f:
    f.write(os.urandom(size)); f.flush(); os.fsync(f.fileno())
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
if hasattr(mmap, "MADV_HUGEPAGE"):
    m.madvise(mmap.MADV_HUGEPAGE)
s = sum(m[i] for i in range(0, size, 4096))
kb = 0
for line in open("/proc/self/smaps"):
    if line.startswith("FilePmdMapped:"):
        kb += int(line.split()[1])
print(kb)
EOF
)
if [ -z "$probe" ] || [ "$probe" -eq 0 ]; then
    echo "skip hugepages: this kernel did not map a freshly read file in 2 MiB pages here (probe: '${probe}' kB)"
    exit 0
fi
bench_json() { "$DYNQ" bench -m "$1" -p 4 -n 4 -t 1 -r 1 --json 2> /dev/null; }
frac() { bench_json "$1" | sed -n 's/.*"file_2m_fraction": \([-0-9.]*\).*/\1/p'; }
f1=$(frac "$T/m.dynq")
awk -v f="$f1" 'BEGIN { exit !(f >= 0.5) }' && echo "ok hugepages_after_convert (file_2m_fraction $f1; probe $probe kB)" \
    || echo "FAIL hugepages_after_convert: file_2m_fraction '$f1' (the probe got $probe kB in 2 MiB pages)"
# The same bytes cached by writing: the fraction the report gives must be what smaps says, and
# a copy's 4 KiB pages show as less than the converted file's.
# (DYNQ_FILE_HUGE=off: the load leaves the page cache as it is)
cp "$T/m.dynq" "$T/c.dynq"
f2=$(DYNQ_FILE_HUGE=off frac "$T/c.dynq")
awk -v a="$f1" -v b="$f2" 'BEGIN { exit !(b != "" && b >= 0 && b < a) }' && echo "ok hugepages_copy_reports_fewer ($f2 against $f1)" \
    || echo "FAIL hugepages_copy_reports_fewer: copy $f2, converted $f1"
# By default a load reads the blocks that the cache holds in 4 KiB pages again, into 2 MiB ones
# (dq_map_file, DQ_MAP_REHUGE), where the kernel can say which they are (PAGEMAP_SCAN, Linux 6.7).
# Once the copy's pages are clean (a file just written is written back first: sync), the report
# must show it in 2 MiB pages, and the page cache must now hold it so for anyone: Python maps the
# copy (without dropping anything) and reads its own FilePmdMapped. The bytes must be the file's:
# a greedy generation from the copy equals the converted file's.
pagemap_scan=$("$PY" - <<'EOF'
import fcntl, os, struct
# struct pm_scan_arg: twelve u64 (linux/fs.h); PAGEMAP_SCAN = _IOWR('f', 16, 96 bytes)
req = (3 << 30) | (96 << 16) | (ord("f") << 8) | 16
fd = os.open("/proc/self/pagemap", os.O_RDONLY)
arg = bytearray(struct.pack("12Q", 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8))
try:
    fcntl.ioctl(fd, req, arg)
    print("yes")
except OSError:
    print("no")
EOF
)
sync "$T/c.dynq"
if [ "$pagemap_scan" != "yes" ]; then
    echo "skip hugepages_copy_reread: this kernel has no PAGEMAP_SCAN (Linux 6.7 and later)"
else
    js=$(bench_json "$T/c.dynq")
    f3=$(printf '%s' "$js" | sed -n 's/.*"file_2m_fraction": \([-0-9.]*\).*/\1/p')
    rr=$(printf '%s' "$js" | sed -n 's/.*"file_reread_bytes": \([0-9]*\).*/\1/p')
    cache=$("$PY" - "$T/c.dynq" <<'EOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
if hasattr(mmap, "MADV_HUGEPAGE"):
    m.madvise(mmap.MADV_HUGEPAGE)
s = sum(m[i] for i in range(0, size, 4096))
print(sum(int(l.split()[1]) for l in open("/proc/self/smaps") if l.startswith("FilePmdMapped:")))
EOF
)
    awk -v f="$f3" -v r="$rr" -v c="$cache" 'BEGIN { exit !(f >= 0.5 && r > 0 && c > 0) }' \
        && echo "ok hugepages_copy_reread (file_2m_fraction $f3, $rr bytes read again; the cache now maps $cache kB in 2 MiB pages)" \
        || echo "FAIL hugepages_copy_reread: file_2m_fraction '$f3', file_reread_bytes '$rr', probe '$cache' kB in 2 MiB pages"
    a=$("$DYNQ" run -m "$T/m.dynq" -p "a" -n 12 --temp 0 2> /dev/null)
    b=$("$DYNQ" run -m "$T/c.dynq" -p "a" -n 12 --temp 0 2> /dev/null)
    [ -n "$a" ] && [ "$a" = "$b" ] && echo "ok hugepages_copy_same_tokens" || echo "FAIL hugepages_copy_same_tokens: '$a' against '$b'"
fi
