#!/usr/bin/python3
"""chat_synth_model.py: a tiny Hugging Face Llama directory for testing `dynq chat` templates.

The tokenizer is the KJV tokenizer.json with five special tokens added (ids 1024..1028):
<|im_start|> <|im_end|> <|start_header_id|> <|end_header_id|> <|eot_id|>, and a
tokenizer_config.json whose chat_template names the family (the converter only looks for each
family's markers in it). The weights are crafted, not trained: every layer's output is tiny next
to the token embedding, so the next token depends only on the current one (a bigram table), and
the table is

    c1 -> c2 -> c3 -> END,   every other token -> c1

with c1 c2 c3 = "\u2581And" "\u2581God" "\u2581said" and END the family's end-of-turn token
(<|im_end|> for chatml, <|eot_id|> for llama3, </s> for llama2 and zephyr). So greedy decoding
answers any prompt with " And God said" and then END, and without a stop at END it would go on
with "And God said" again.

Usage: chat_synth_model.py OUT_DIR --family chatml|llama3|llama2|zephyr [--kjv-hf DIR]
"""
import argparse
import json
import os
import sys

import numpy as np

from make_synthetic import write_safetensors  # scripts/ is on sys.path when run as a script

ADDED = ["<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CHAIN = ["\u2581And", "\u2581God", "\u2581said"]
END = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "llama2": "</s>", "zephyr": "</s>"}
# Jinja texts in each family's published form (the converter recognises the family by its markers).
TEMPLATES = {
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
              "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
              "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
              "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
              "{{ content }}{% endfor %}{% if add_generation_prompt %}"
              "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    "llama2": "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
              "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + "
              "message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}",
    "zephyr": "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
              "message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ '<|system|>\\n' + "
              "message['content'] + eos_token }}{% else %}{{ '<|assistant|>\\n' + message['content'] + eos_token }}"
              "{% endif %}{% endfor %}",
}
D, F, HEADS, KV = 64, 128, 4, 2


def main(argv):
    ap = argparse.ArgumentParser(description="tiny bigram Llama with chat special tokens")
    ap.add_argument("out_dir")
    ap.add_argument("--family", required=True, choices=sorted(END))
    ap.add_argument("--kjv-hf", default=os.path.join(os.environ.get("DYNQ_SHARED", "../shared"), "models/kjv/kjv-hf"))
    a = ap.parse_args(argv)
    src = os.path.join(a.kjv_hf, "tokenizer.json")
    if not os.path.isfile(src):
        print("chat_synth_model.py: no %s" % src, file=sys.stderr)
        return 2
    tok = json.load(open(src, encoding="utf-8"))
    vocab = tok["model"]["vocab"]
    n0 = len(vocab)
    for k, s in enumerate(ADDED):
        tok["added_tokens"].append({"id": n0 + k, "content": s, "single_word": False, "lstrip": False,
                                    "rstrip": False, "normalized": False, "special": True})
    V = n0 + len(ADDED)
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    chain = [vocab[p] for p in CHAIN] + [ids[END[a.family]]]

    rng = np.random.default_rng(7)
    # Embeddings: the chain tokens on axes 0..2, every other token on axis 3 plus a little noise
    # in the axes 4.. (so they are not all identical).
    emb = np.zeros((V, D), np.float32)
    emb[:, 3] = 1.0
    emb[:, 4:] = 0.1 * rng.standard_normal((V, D - 4))
    for k, t in enumerate(chain[:3]):
        emb[t] = 0.0
        emb[t, k] = 1.0
    # Classifier: after RMSNorm a one-axis embedding is sqrt(D) = 8 on that axis, so these rows
    # give the successor a logit near 8 * 4 = 32; the other rows are small noise.
    cls = 0.02 * rng.standard_normal((V, D)).astype(np.float32)
    cls[:, :4] = 0.0
    for k in range(3):
        cls[chain[k + 1], k] = 4.0
    cls[chain[0], 3] = 4.0
    small = lambda *shape: (0.01 * rng.standard_normal(shape)).astype(np.float32)
    hd = D // HEADS
    t = [("model.embed_tokens.weight", emb),
         ("model.layers.0.input_layernorm.weight", np.ones(D, np.float32)),
         ("model.layers.0.self_attn.q_proj.weight", small(HEADS * hd, D)),
         ("model.layers.0.self_attn.k_proj.weight", small(KV * hd, D)),
         ("model.layers.0.self_attn.v_proj.weight", small(KV * hd, D)),
         ("model.layers.0.self_attn.o_proj.weight", small(D, HEADS * hd)),
         ("model.layers.0.post_attention_layernorm.weight", np.ones(D, np.float32)),
         ("model.layers.0.mlp.gate_proj.weight", small(F, D)),
         ("model.layers.0.mlp.up_proj.weight", small(F, D)),
         ("model.layers.0.mlp.down_proj.weight", small(D, F)),
         ("model.norm.weight", np.ones(D, np.float32)),
         ("lm_head.weight", cls)]
    os.makedirs(a.out_dir, exist_ok=True)
    write_safetensors(os.path.join(a.out_dir, "model.safetensors"), t, "F32")
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
           "intermediate_size": F, "num_hidden_layers": 1, "num_attention_heads": HEADS,
           "num_key_value_heads": KV, "head_dim": hd, "vocab_size": V, "max_position_embeddings": 512,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None, "hidden_act": "silu",
           "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
           "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    json.dump(cfg, open(os.path.join(a.out_dir, "config.json"), "w"), indent=2)
    json.dump(tok, open(os.path.join(a.out_dir, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
    tc = json.load(open(os.path.join(a.kjv_hf, "tokenizer_config.json"), encoding="utf-8"))
    for k, s in enumerate(ADDED):
        tc["added_tokens_decoder"][str(n0 + k)] = {"content": s, "single_word": False, "lstrip": False,
                                                   "rstrip": False, "normalized": False, "special": True}
    tc["chat_template"] = TEMPLATES[a.family]
    tc["model_max_length"] = 512
    json.dump(tc, open(os.path.join(a.out_dir, "tokenizer_config.json"), "w", encoding="utf-8"), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
