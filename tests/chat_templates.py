#!/usr/bin/python3
"""tests/chat_templates.py: `dynq chat` prompt rendering, end-of-turn stops and incremental prefill,
on tiny crafted models (scripts/chat_synth_model.py: KJV tokenizer plus ChatML/Llama 3 special
tokens, weights that answer every prompt with " And God said" and then the family's end-of-turn
token). Run by tests/test_chat.sh; prints ok/FAIL/skip lines.

The expected prompts are written out below by hand from each family's published format, not taken
from cli_chat.c. `dynq chat --verbose-prompt` prints the rendered prompt text and ids before each
prefill; the text must equal the expected string and the ids must equal `dynq tokenize
--parse-special` of that string (the tokenizer on the whole text, as llama.cpp does; BOS added by
the tokenizer, so the strings below leave it out).

Usage: chat_templates.py DYNQ WORK_DIR KJV_HF_DIR [KJV_DYNQ_MODEL (for the --template none checks)]
"""
import os
import re
import subprocess
import sys

SYS = "You are a scribe."
MSGS = ["Hello there", "Who spake?"]
ANSWER = " And God said"  # the crafted model's answer: ids of "\u2581And" "\u2581God" "\u2581said"


def expected(family, system, msgs, n_answered):
    """The prompt for the turns msgs, the first n_answered of them answered with ANSWER."""
    out = []
    if family == "chatml":
        if system:
            out.append("<|im_start|>system\n%s<|im_end|>\n" % system)
        for i, m in enumerate(msgs):
            out.append("<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n" % m)
            if i < n_answered:
                out.append(ANSWER + "<|im_end|>\n")
    elif family == "llama3":
        if system:
            out.append("<|start_header_id|>system<|end_header_id|>\n\n%s<|eot_id|>" % system)
        for i, m in enumerate(msgs):
            out.append("<|start_header_id|>user<|end_header_id|>\n\n%s<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n" % m)
            if i < n_answered:
                out.append(ANSWER + "<|eot_id|>")
    elif family == "llama2":
        # <s>[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{msg} [/INST] {answer} </s><s>[INST] {msg} [/INST]
        for i, m in enumerate(msgs):
            if i > 0:
                out.append("<s>")
            if i == 0 and system:
                out.append("[INST] <<SYS>>\n%s\n<</SYS>>\n\n%s [/INST]" % (system, m))
            else:
                out.append("[INST] %s [/INST]" % m)
            if i < n_answered:
                out.append(ANSWER + " </s>")
    elif family == "zephyr":
        if system:
            out.append("<|system|>\n%s</s>\n" % system)
        for i, m in enumerate(msgs):
            out.append("<|user|>\n%s</s>\n<|assistant|>\n" % m)
            if i < n_answered:
                out.append(ANSWER + "</s>\n")
    return "".join(out)


def escape(s):
    """The escaping of --verbose-prompt's text line (bytes >= 0x80 as they are)."""
    r = []
    for ch in s:
        if ch == "\n":
            r.append("\\n")
        elif ch in "\\\"":
            r.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            r.append("\\x%02x" % ord(ch))
        else:
            r.append(ch)
    return "".join(r)


class T:
    fails = 0

    @staticmethod
    def check(cond, name, why):
        if cond:
            print("ok " + name)
        else:
            print("FAIL %s: %s" % (name, why))
            T.fails += 1
        sys.stdout.flush()


def tokenize(dynq, model, text):
    r = subprocess.run([dynq, "tokenize", "-m", model, "--parse-special", "--ids", "-p", text],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("dynq tokenize failed: " + r.stderr)
    return [int(x) for x in r.stdout.split()]


def chat(dynq, model, lines, *args):
    r = subprocess.run([dynq, "chat", "-m", model, "--temp", "0", "--verbose-prompt"] + list(args),
                       input="".join(l + "\n" for l in lines).encode(), capture_output=True, timeout=120,
                       env=dict(os.environ, NO_COLOR="1"))
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def prompts(err):
    """[(text_escaped, ids, in_cache)] in order from --verbose-prompt output."""
    heads = re.findall(r"^dynq chat: prompt: (\d+) tokens, (\d+) in the cache, (\d+) to prefill$", err, re.M)
    texts = re.findall(r'^dynq chat: prompt text: "(.*)"$', err, re.M)
    ids = re.findall(r"^dynq chat: prompt ids:((?: \d+)*)$", err, re.M)
    if not (len(heads) == len(texts) == len(ids)):
        return None
    return [(t, [int(x) for x in i.split()], int(h[1])) for h, t, i in zip(heads, texts, ids)]


def family_checks(dynq, model, family):
    for system in (SYS, None):
        tag = "%s_%s" % (family, "sys" if system else "nosys")
        args = ["-n", "10"] + (["--system", system] if system else [])
        rc, out, err = chat(dynq, model, [MSGS[0], "/stats", MSGS[1], "/stats"], *args)
        ps = prompts(err)
        n_want = 3  # one at the start (BOS and the system prompt, if any), one per turn
        if rc != 0 or ps is None or len(ps) != n_want:
            T.check(False, "chat_template_" + tag, "status %d, %s prompts printed (want %d): %s"
                    % (rc, "?" if ps is None else len(ps), n_want, err[:600]))
            continue
        p1, p2 = ps[-2], ps[-1]
        want1 = expected(family, system, MSGS[:1], 0)
        want2 = expected(family, system, MSGS, 1)
        T.check(p1[0] == escape(want1) and p2[0] == escape(want2), "chat_template_%s_text" % tag,
                "rendered | %s | %s | want | %s | %s" % (p1[0], p2[0], escape(want1), escape(want2)))
        ids1, ids2 = tokenize(dynq, model, want1), tokenize(dynq, model, want2)
        T.check(p1[1] == ids1 and p2[1] == ids2, "chat_template_%s_ids" % tag,
                "chat ids | %s | %s | tokenize of the expected text | %s | %s" % (p1[1], p2[1], ids1, ids2))
        # Stops at the end-of-turn token: exactly the three answer tokens each turn, nothing of the
        # end-of-turn token's text on stdout, and the second turn answered as well.
        answers = re.findall(r"last answer: (\d+) tokens", err)
        T.check(out == "And God said\nAnd God said\n" and answers == ["3", "3"], "chat_eot_stop_" + tag,
                "stdout %r, answer lengths %s (want two lines 'And God said' of 3 tokens)" % (out, answers))
        # Only the new turn is prefilled: the cache held turn one's prompt and answer (up to the
        # end-of-turn token, which was generated but not fed back), the first tokens of the second
        # prompt; what is prefilled is the rest: the answer's closing text and the new turn.
        done = tokenize(dynq, model, want1 + ANSWER)
        last = re.findall(r"last prompt: (\d+) tokens prefilled", err)
        n_new = len(ids2) - len(done)
        T.check(ids2[:len(done)] == done and last[-1:] == [str(n_new)] and p2[2] == len(done),
                "chat_prefill_new_turn_only_" + tag,
                "second turn prefilled %s tokens with %d in the cache (want %d new after %d): %s"
                % (last[-1:], p2[2], n_new, len(done), ids2))


def system_survives(dynq, model):
    """chatml, -c 64: turns are dropped; the system block stays at the start, in the cache."""
    msgs = ["Hello there", "Who spake?", "In the beginning", "And the earth", "Let there be light"]
    rc, out, err = chat(dynq, model, msgs + ["/stats"], "-n", "8", "-c", "64", "--system", SYS)
    ps = prompts(err)
    drop = re.search(r"context full \(64 tokens\): dropped the (\d+) oldest turns?, (\d+) kept and the system prompt", err)
    ok = rc == 0 and ps is not None and drop is not None and out == "And God said\n" * len(msgs)
    T.check(ok, "chat_context_full_keeps_system", "status %d, stdout %r, stderr %s" % (rc, out, err[:800]))
    if not ok:
        return
    # The first prompt printed after the first drop notice: the system block, then the kept turns.
    # Prompts before it: the one at the start and one per earlier turn, so it is that of turn n.
    n = len(prompts(err[:err.index(drop.group(0))]))
    kept = int(drop.group(2))
    p = ps[n]
    want = expected("chatml", SYS, msgs[n - kept:n], kept - 1)
    sys_ids = tokenize(dynq, model, expected("chatml", SYS, [], 0))
    T.check(p[0] == escape(want) and p[1] == tokenize(dynq, model, want), "chat_context_full_system_first",
            "after the drop the prompt is | %s | want | %s" % (p[0], escape(want)))
    # The cache kept the system block (the longest common prefix reaches past it): not recomputed.
    T.check(p[1][:len(sys_ids)] == sys_ids and p[2] >= len(sys_ids), "chat_context_full_system_cached",
            "%d tokens reused from the cache, the system block is %d" % (p[2], len(sys_ids)))
    dropped = re.search(r"context: \d+/64 tokens, (\d+) turns? kept, (\d+) dropped", err)
    T.check(dropped is not None and int(dropped.group(2)) >= 1 and all(q[1][:len(sys_ids)] == sys_ids for q in ps),
            "chat_context_full_system_every_prompt", "a prompt without the system block at its start, or no drop: %s"
            % (dropped.group(0) if dropped else err[-300:]))


def tokenize_plain(dynq, model, text, bos=True):
    r = subprocess.run([dynq, "tokenize", "-m", model, "--ids", "-p", text] + ([] if bos else ["--no-bos"]),
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("dynq tokenize failed: " + r.stderr)
    return [int(x) for x in r.stdout.split()]


def none_checks(dynq, model):
    """The KJV base model, --template none: plain text, every turn encoded on its own."""
    # Multi-turn prefills only the new turn: its text, plus the previous answer's last token when
    # that answer ended at -n (a token is fed back only when the next one is wanted).
    rc, out, err = chat(dynq, model, ["In the beginning", "/stats", "And the LORD said", "/stats"],
                        "--template", "none", "-n", "24")
    ans = re.findall(r"last answer: (\d+) tokens", err)
    last = re.findall(r"last prompt: (\d+) tokens prefilled", err)
    turn = tokenize_plain(dynq, model, "And the LORD said", bos=False)
    want = len(turn) + (1 if ans[:1] == ["24"] else 0)
    T.check(rc == 0 and len(ans) == 2 and last[-1:] == [str(want)], "chat_none_prefill_new_turn_only",
            "status %d; second turn prefilled %s tokens, want %d (%d of the turn, first answer %s tokens)"
            % (rc, last[-1:], want, len(turn), ans[:1]))
    # Context full in the middle of answers (-c 128 -n 60): the system prompt stays first in every
    # prompt and in the cache.
    system = "The first book of Moses"
    rc, out, err = chat(dynq, model, ["In the beginning", "And the LORD said", "Blessed are the poor"],
                        "--template", "none", "-n", "60", "-c", "128", "--system", system)
    ps = prompts(err)
    sys_ids = tokenize_plain(dynq, model, system)
    at = err.find("and the system prompt")
    after = prompts(err[at:]) if at >= 0 else None
    ok = rc == 0 and ps and after and all(q[1][:len(sys_ids)] == sys_ids for q in ps)
    T.check(ok and after[0][2] >= len(sys_ids), "chat_none_context_full_keeps_system",
            "status %d; drop notice %s; prompts %s; system ids %s" % (rc, at >= 0, [(q[1][:12], q[2]) for q in ps or []],
                                                                      sys_ids))


def main(argv):
    dynq, work, kjv_hf = argv[1:4]
    if len(argv) > 4:
        none_checks(dynq, argv[4])
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "..", "scripts", "chat_synth_model.py")
    for family in ("chatml", "llama3", "llama2", "zephyr"):
        d = os.path.join(work, "synth-" + family)
        model = d + ".dynq"
        r = subprocess.run([sys.executable, script, d, "--family", family, "--kjv-hf", kjv_hf],
                           capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run([dynq, "convert", d, "-o", model], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            T.check(False, "chat_template_" + family, "making the synthetic model failed: " + r.stderr[:300])
            continue
        # --template auto picks the family from the converted tokenizer_config.json chat_template
        rc, out, err = chat(dynq, model, ["/stats"])
        T.check(rc == 0 and ("template %s\n" % family) in err, "chat_template_auto_" + family, err[:300])
        family_checks(dynq, model, family)
        if family == "chatml":
            system_survives(dynq, model)
    return 3 if T.fails else 0  # 3: checks failed (reported); anything else non-zero: a crash


if __name__ == "__main__":
    sys.exit(main(sys.argv))
