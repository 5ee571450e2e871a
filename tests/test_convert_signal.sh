#!/usr/bin/env bash
# tests/test_convert_signal.sh: an interrupted conversion (SIGINT, SIGTERM) must die of the signal
# (exit status 128+sig) and leave neither its temporary file (OUT.tmp.PID) nor OUT behind.
# The test polls (10 ms steps, with a timeout) until the temporary file exists, freezes the converter
# with SIGSTOP, checks the file is still there (a stopped process cannot rename it), sends the signal
# and SIGCONT: so the signal surely lands mid-conversion, however loaded the machine. A random
# ~50 MB llama2.c checkpoint (scripts/random_model.py) makes the writing phase ~0.1 s, well over the
# polling step; a run where the conversion ended before it could be stopped is inconclusive and is
# retried (3 attempts, then FAIL).
cd "$(dirname "$0")/.."
DYNQ=${DYNQ:-./dynq}
PY=/usr/bin/python3
if [ ! -x "$DYNQ" ]; then echo "skip convert_signal: $DYNQ not built"; exit 0; fi
if [ ! -r /proc/self/stat ]; then echo "skip convert_signal: no /proc (needed to see the converter stopped)"; exit 0; fi
if ! "$PY" -c 'import numpy' 2> /dev/null; then echo "skip convert_signal: numpy missing (scripts/random_model.py)"; exit 0; fi
T=$(mktemp -d /tmp/dynq-convsig.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2> /dev/null; rm -rf "$T"' EXIT
# Without job control bash starts background commands with SIGINT ignored: restore the default.
if env --default-signal=INT true 2> /dev/null; then
    LAUNCH=(env --default-signal=INT)
else
    LAUNCH=("$PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])')
fi
if ! "$PY" scripts/random_model.py --dim 512 --hidden 1376 --layers 4 --heads 8 --kv-heads 8 --vocab 512 --seq 64 \
        --seed 7 -o "$T/m.bin" > "$T/gen.log" 2>&1; then
    echo "FAIL convert_signal_setup: random_model.py: $(tail -2 "$T/gen.log" | tr '\n' ' ')"; exit 1
fi
bad=0
for sig in INT TERM; do
    num=$(kill -l "$sig")
    name=convert_signal_sig${sig,,}
    why="" verdict=""
    for attempt in 1 2 3; do
        rm -f "$T"/out.dynq "$T"/out.dynq.tmp.*
        "${LAUNCH[@]}" "$DYNQ" convert "$T/m.bin" --tokenizer models/tok512.bin -o "$T/out.dynq" > /dev/null 2> "$T/err" &
        pid=$!
        # Poll (10 ms steps, 120 s limit) until the temporary file appears or the process ends.
        seen=0
        for ((i = 0; i < 12000; i++)); do
            if compgen -G "$T/out.dynq.tmp.*" > /dev/null; then seen=1; break; fi
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.01
        done
        if [ "$seen" = 0 ]; then
            kill -KILL "$pid" 2> /dev/null
            wait "$pid" 2> /dev/null
            rc=$?
            pid=""
            why="no $T/out.dynq.tmp.* appeared before the conversion ended (status $rc: $(head -c 200 "$T/err"))"
            break
        fi
        # Freeze the converter, then check the temporary file is still there: a stopped process
        # cannot rename it, so the signal (delivered on SIGCONT) surely lands mid-conversion.
        kill -STOP "$pid" 2> /dev/null
        for ((i = 0; i < 12000; i++)); do
            st=$(sed 's/.*) //' "/proc/$pid/stat" 2> /dev/null | cut -c1)
            [ "$st" = T ] || [ -z "$st" ] || [ "$st" = Z ] && break
            sleep 0.01
        done
        if [ "$st" != T ] || ! compgen -G "$T/out.dynq.tmp.*" > /dev/null; then
            kill -CONT "$pid" 2> /dev/null
            wait "$pid" 2> /dev/null
            rc=$?
            pid=""
            verdict="conversion ended (status $rc) before it could be stopped (attempt $attempt)"
            continue  # inconclusive: the writing phase was shorter than the polling delay
        fi
        kill -s "$sig" "$pid"
        kill -CONT "$pid"
        wait "$pid" 2> /dev/null
        rc=$?
        pid=""
        left=$(ls "$T" | grep -E '^out\.dynq')
        if [ "$rc" != $((128 + num)) ]; then
            why="exit status $rc, want $((128 + num)): $(head -c 200 "$T/err" | tr '\n' ' ')"
        elif [ -n "$left" ]; then
            why="left behind: $(echo $left)"
        fi
        verdict=done
        break
    done
    if [ -z "$why" ] && [ "$verdict" != done ]; then why="inconclusive 3 times: $verdict"; fi
    if [ -n "$why" ]; then
        echo "FAIL $name: $why"
        bad=$((bad + 1))
    else
        echo "ok $name (status $((128 + num)), no output or temporary file)"
    fi
done
exit $((bad > 0))
