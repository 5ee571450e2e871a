// convert.h: turn a llama2.c checkpoint or a Hugging Face Llama directory into a .dynq file.
#ifndef DYNQ_CONVERT_H
#define DYNQ_CONVERT_H

#include "common.h"

typedef struct dq_convert_opts {
    const char *input;      // llama2.c .bin or Hugging Face directory (detected by content)
    const char *tokenizer;  // tokenizer file; NULL: the directory's tokenizer.json (HF) / required (llama2.c)
    const char *out;        // final path
    const char *tmp;        // temporary path in the same directory (renamed to out at the end)
    int wtype;              // DQ_WTYPE_INT8 (default) or DQ_WTYPE_F32
    dq_progress_fn progress;  // called after each tensor written (NULL: none)
    void *progress_ud;
} dq_convert_opts;

int dq_convert(const dq_convert_opts *o, dq_err *e);

#endif
