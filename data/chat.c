/* data/chat.c — see chat.h */
#include "data/chat.h"
#include "data/tokenizer.h"
#include "core/alloc.h"
#include "core/strbuf.h"

#include <stdlib.h>
#include <string.h>

void token_seq_free(TokenSeq *s) {
    if (!s) return;
    free(s->ids);
    free(s->loss);
    memset(s, 0, sizeof *s);
}


char *chat_render(const SftRole *roles, char *const *contents, int n, int add_generation_prompt,
                  const char *bos, const char *eos) {
    CrBuf b = {0};
    cr_buf_puts(&b, bos);
    for (int i = 0; i < n; i++) {
        switch (roles[i]) {
        case SFT_USER: cr_buf_puts(&b, "User: "); cr_buf_puts(&b, contents[i]); cr_buf_puts(&b, "\n\n"); break;
        case SFT_ASSISTANT: cr_buf_puts(&b, "Assistant: "); cr_buf_puts(&b, contents[i]); cr_buf_puts(&b, eos); break;
        case SFT_SYSTEM: cr_buf_puts(&b, contents[i]); cr_buf_puts(&b, "\n\n"); break;
        }
    }
    if (add_generation_prompt) cr_buf_puts(&b, "Assistant:");
    return b.p;
}


static void seq_push(TokenSeq *s, int *cap, int32_t id, uint8_t loss) {
    if (s->n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        s->ids = cr_realloc(s->ids, sizeof(int32_t) * (size_t)*cap);
        s->loss = cr_realloc(s->loss, (size_t)*cap);
    }
    s->ids[s->n] = id;
    s->loss[s->n++] = loss;
}

/* Encode text (special tokens as plain text) and append with the given loss flag. */
static void seq_text(const Tokenizer *t, TokenSeq *s, int *cap, const char *text, size_t len, uint8_t loss) {
    int n = 0;
    int32_t *ids = tokenizer_encode(t, text, len, 0, &n);
    for (int i = 0; i < n; i++) seq_push(s, cap, ids[i], loss);
    free(ids);
}

static int bos_eos(const Tokenizer *t, int *bos, int *eos, CrError *e) {
    *bos = tokenizer_bos_id(t);
    *eos = tokenizer_eos_id(t);
    if (*bos < 0 || *eos < 0) return cr_error_set(e, "tokenizer has no %s token", *bos < 0 ? "BOS" : "EOS");
    return 0;
}

int chat_encode(const Tokenizer *t, const SftRole *roles, char *const *contents, int n,
                int add_generation_prompt, TokenSeq *out, CrError *e) {
    memset(out, 0, sizeof *out);
    int bos, eos, cap = 0;
    if (bos_eos(t, &bos, &eos, e) < 0) return -1;
    int32_t space_id = -1;
    {   /* the id of a lone " " (the template's space when it is a token of its own) */
        int k = 0;
        int32_t *ids = tokenizer_encode(t, " ", 1, 0, &k);
        if (k == 1) space_id = ids[0];
        free(ids);
    }
    seq_push(out, &cap, bos, 0);
    CrBuf pending = {0};   /* prompt-side text not yet encoded (no loss) */
    cr_buf_puts(&pending, "");
    for (int i = 0; i < n; i++) {
        switch (roles[i]) {
        case SFT_SYSTEM: cr_buf_puts(&pending, contents[i]); cr_buf_puts(&pending, "\n\n"); break;
        case SFT_USER:
            cr_buf_puts(&pending, "User: "); cr_buf_puts(&pending, contents[i]); cr_buf_puts(&pending, "\n\n");
            break;
        case SFT_ASSISTANT: {
            cr_buf_puts(&pending, "Assistant:");
            seq_text(t, out, &cap, pending.p, pending.n, 0);
            pending.n = 0;
            pending.p[0] = 0;
            size_t cl = strlen(contents[i]);
            char *reply = cr_malloc(cl + 2);
            reply[0] = ' ';
            memcpy(reply + 1, contents[i], cl + 1);
            int first = out->n;
            seq_text(t, out, &cap, reply, cl + 1, 1);
            free(reply);
            if (out->n > first && out->ids[first] == space_id) out->loss[first] = 0;
            seq_push(out, &cap, eos, 1);
            break;
        }
        }
    }
    if (add_generation_prompt) cr_buf_puts(&pending, "Assistant:");
    if (pending.n) seq_text(t, out, &cap, pending.p, pending.n, 0);
    free(pending.p);
    return 0;
}

int fim_encode(const Tokenizer *t, const char *prefix, const char *suffix, const char *middle,
               TokenSeq *out, CrError *e) {
    memset(out, 0, sizeof *out);
    int bos, eos, fb, fh, fe, cap = 0;
    if (bos_eos(t, &bos, &eos, e) < 0) return -1;
    if (tokenizer_fim_ids(t, &fb, &fh, &fe) < 0) return cr_error_set(e, "tokenizer has no FIM tokens (fim_begin/fim_hole/fim_end)");
    seq_push(out, &cap, bos, 0);
    seq_push(out, &cap, fb, 0);
    seq_text(t, out, &cap, prefix, strlen(prefix), 0);
    seq_push(out, &cap, fh, 0);
    seq_text(t, out, &cap, suffix, strlen(suffix), 0);
    seq_push(out, &cap, fe, 0);
    if (middle) {
        seq_text(t, out, &cap, middle, strlen(middle), 1);
        seq_push(out, &cap, eos, 1);
    }
    return 0;
}

int completion_encode(const Tokenizer *t, const char *prompt, const char *completion, TokenSeq *out,
                      CrError *e) {
    memset(out, 0, sizeof *out);
    int bos, eos, cap = 0;
    if (bos_eos(t, &bos, &eos, e) < 0) return -1;
    seq_push(out, &cap, bos, 0);
    seq_text(t, out, &cap, prompt, strlen(prompt), 0);
    seq_text(t, out, &cap, completion, strlen(completion), 1);
    seq_push(out, &cap, eos, 1);
    return 0;
}

int sft_example_encode(const Tokenizer *t, const SftExample *x, TokenSeq *out, CrError *e) {
    if (x->n_messages > 0) return chat_encode(t, x->roles, x->contents, x->n_messages, 0, out, e);
    if (x->fim_middle) return fim_encode(t, x->fim_prefix, x->fim_suffix, x->fim_middle, out, e);
    if (x->prompt && x->completion) return completion_encode(t, x->prompt, x->completion, out, e);
    memset(out, 0, sizeof *out);
    return cr_error_set(e, "line %d: empty SFT example", x->line);
}
