#!/usr/bin/env bash
# tests/test_threads.sh: how many threads dynq takes when -t is not given, and what it says when
# -t asks for more than the process may run on.
# The default is the physical cores among the CPUs this process may use: its affinity mask
# (taskset, cpusets), at most its cgroup's CPU quota rounded up. The expectation is computed
# independently here, in Python (os.sched_getaffinity, /proc/cpuinfo, the cgroup files), and
# checked against `dynq info --cpu`, first as the tests run, then pinned to one CPU with
# taskset, then (where this user may create one) inside a cgroup given half a CPU. An explicit -t
# above the available CPUs is honoured with a warning on stderr, and the tokens do not change.
cd "$(dirname "$0")/.."
DYNQ=${DYNQ:-./dynq}
PY=/usr/bin/python3
if [ ! -x "$DYNQ" ]; then echo "skip threads: $DYNQ not built"; exit 0; fi
T=$(mktemp -d "${DYNQ_TMP:-/tmp}/dynq-threads.XXXXXX")
CG=""
cleanup() {
    if [ -n "$CG" ]; then
        cat "$CG/cgroup.procs" 2> /dev/null | while read -r p; do echo "$p" > "$(dirname "$CG")/cgroup.procs"; done 2> /dev/null
        rmdir "$CG" 2> /dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT

# The expected "threads:" line of `dynq info --cpu` for the process that runs this Python.
cat > "$T/expect.py" <<'EOF'
import os

def quota(text):
    f = text.split()
    if len(f) < 2 or f[0] == "max":
        return 0
    try:
        q, p = int(f[0]), int(f[1])
    except ValueError:
        return 0
    return -(-q // p) if q > 0 and p > 0 else 0

def limits():
    out = []
    for line in open("/proc/self/cgroup"):
        hid, ctrl, path = line.rstrip("\n").split(":", 2)
        if hid == "0" and ctrl == "":
            root, files = "/sys/fs/cgroup", ["cpu.max"]
        elif "cpu" in ctrl.split(","):
            root, files = "/sys/fs/cgroup/cpu", ["cpu.cfs_quota_us", "cpu.cfs_period_us"]
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for n in range(len(parts), -1, -1):
            d = os.path.join(root, *parts[:n])
            try:
                text = " ".join(open(os.path.join(d, f)).read().strip() for f in files)
            except OSError:
                continue
            if quota(text):
                out.append(quota(text))
    return out

cpus = os.sched_getaffinity(0)
avail = min([len(cpus)] + limits())
cores, proc, phys = set(), None, None
for line in open("/proc/cpuinfo"):
    k, _, v = line.partition(":")
    k, v = k.strip(), v.strip()
    if k == "processor":
        proc, phys = int(v), None
    elif k == "physical id":
        phys = int(v)
    elif k == "core id" and proc in cpus:
        cores.add((phys, int(v)))
default = len(cores) if 0 < len(cores) <= avail else avail
print("threads: default -t %d (physical cores among the %d CPU%s this process may run on)"
      % (default, avail, "" if avail == 1 else "s"))
EOF

# check NAME PREFIX...: `dynq info --cpu` and the Python expectation, both run under PREFIX
check() {
    local name=$1
    shift
    local got want
    got=$("$@" "$DYNQ" info --cpu 2>&1 | grep '^threads:')
    want=$("$@" "$PY" "$T/expect.py" 2>&1)
    if [ -n "$got" ] && [ "$got" = "$want" ]; then echo "ok threads-default-$name ($got)"
    else echo "FAIL threads-default-$name: dynq says '$got', expected '$want'"; fi
}
check asis env

if ! command -v taskset > /dev/null; then
    echo "skip threads-taskset: no taskset"
else
    cpu=$("$PY" -c 'import os; print(min(os.sched_getaffinity(0)))')
    check one-cpu taskset -c "$cpu"
    got=$(taskset -c "$cpu" "$DYNQ" info --cpu | grep '^threads:')
    case "$got" in
    *"default -t 1 "*"the 1 CPU "*) echo "ok threads-one-cpu-is-one" ;;
    *) echo "FAIL threads-one-cpu-is-one: pinned to CPU $cpu, dynq says '$got'" ;;
    esac
    M="$T/s.dynq"
    if ! "$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin -o "$M" > /dev/null 2>&1; then
        echo "FAIL threads-convert: cannot convert models/stories260K.bin"
    else
        run() { "$DYNQ" run -m "$M" -p "Once upon a time" -n 16 --seed 7 "$@"; }
        run -t 1 > "$T/t1.out" 2> "$T/t1.err"
        r1=$?
        taskset -c "$cpu" "$DYNQ" run -m "$M" -p "Once upon a time" -n 16 --seed 7 -t 3 > "$T/t3.out" 2> "$T/t3.err"
        r3=$?
        taskset -c "$cpu" "$DYNQ" run -m "$M" -p "Once upon a time" -n 16 --seed 7 > "$T/td.out" 2> "$T/td.err"
        rd=$?
        if [ $r1 -eq 0 ] && [ $r3 -eq 0 ] && [ $rd -eq 0 ] && [ -s "$T/t1.out" ] && cmp -s "$T/t1.out" "$T/t3.out" &&
            cmp -s "$T/t1.out" "$T/td.out"; then
            echo "ok threads-oversubscribed-same-tokens"
        else
            echo "FAIL threads-oversubscribed-same-tokens: status $r1/$r3/$rd, or outputs differ"
        fi
        if grep -q "warning: -t 3 exceeds the 1 CPU this process may run on" "$T/t3.err" &&
            [ "$(grep -c warning "$T/t3.err")" -eq 1 ]; then
            echo "ok threads-oversubscribed-warns"
        else
            echo "FAIL threads-oversubscribed-warns: stderr was: $(head -c 300 "$T/t3.err")"
        fi
        if grep -q warning "$T/td.err" "$T/t1.err"; then
            echo "FAIL threads-default-no-warning: $(grep -h warning "$T/td.err" "$T/t1.err" | head -2)"
        else
            echo "ok threads-default-no-warning"
        fi
        if printf 'hello\n' | taskset -c "$cpu" "$DYNQ" chat -m "$M" -n 4 -t 2 2>&1 > /dev/null |
            grep -q "warning: -t 2 exceeds the 1 CPU"; then
            echo "ok threads-chat-warns"
        else
            echo "FAIL threads-chat-warns: no warning from chat -t 2 on one CPU"
        fi
    fi
fi

# A cgroup with half a CPU: cgroup v1's cpu controller or v2's cpu.max, where this user may create
# one and move a process into it (root outside a read-only container); skipped elsewhere.
v2=$(awk -F: '$1 == "0" && $2 == "" {print $3}' /proc/self/cgroup)
v1=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' /proc/self/cgroup)
if [ -n "$v1" ] && [ -w "/sys/fs/cgroup/cpu${v1%/}" ]; then
    CG="/sys/fs/cgroup/cpu${v1%/}/dynq-test-$$"
    mkdir "$CG" 2> /dev/null && echo 100000 > "$CG/cpu.cfs_period_us" && echo 50000 > "$CG/cpu.cfs_quota_us" || CG=""
elif [ -n "$v2" ] && [ -w "/sys/fs/cgroup${v2%/}" ] && grep -qw cpu "/sys/fs/cgroup${v2%/}/cgroup.subtree_control" 2> /dev/null; then
    CG="/sys/fs/cgroup${v2%/}/dynq-test-$$"
    mkdir "$CG" 2> /dev/null && echo "50000 100000" > "$CG/cpu.max" || CG=""
fi
if [ -z "$CG" ]; then
    echo "skip threads-cgroup-quota: cannot create a cgroup with a CPU quota here"
else
    inner() { sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$CG" "$@"; }
    check cgroup-half-cpu inner
    got=$(inner "$DYNQ" info --cpu | grep '^threads:')
    case "$got" in
    *"default -t 1 "*"the 1 CPU "*) echo "ok threads-cgroup-quota-is-one" ;;
    *) echo "FAIL threads-cgroup-quota-is-one: in a cgroup of half a CPU, dynq says '$got'" ;;
    esac
fi
