/* model/params.c — the parameter table: names, shapes and offsets of every tensor in the
 * flat buffer, and the per-layer views built from it. */
#include "model/params.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

typedef struct Table {
    ParamTensor *t;
    int n, cap;
    size_t total;
} Table;

static void add(Table *tb, int64_t rows, int64_t cols, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(Table *tb, int64_t rows, int64_t cols, const char *fmt, ...) {
    if (tb->n == tb->cap) {
        tb->cap = tb->cap ? 2 * tb->cap : 64;
        tb->t = cr_realloc(tb->t, sizeof(ParamTensor) * (size_t)tb->cap);
    }
    ParamTensor *p = &tb->t[tb->n++];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = cols > 0 ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols > 0 ? cols : 0;
    p->numel = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    p->offset = tb->total;
    tb->total += p->numel;
}

ParamTensor *model_params_layout(const ModelConfig *c, int *n, size_t *n_params) {
    Table tb = {0};
    int D = c->hidden_size, H = c->num_attention_heads, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    int dv = c->v_head_dim, r = c->kv_lora_rank, ql = c->q_lora_rank, dqk = dn + dr;
    add(&tb, c->vocab_size, D, "model.embed_tokens.weight");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const char *p = "model.layers";
        add(&tb, D, 0, "%s.%d.input_layernorm.weight", p, l);
        if (ql > 0) {
            add(&tb, ql, D, "%s.%d.self_attn.q_a_proj.weight", p, l);
            add(&tb, ql, 0, "%s.%d.self_attn.q_a_layernorm.weight", p, l);
            add(&tb, (int64_t)H * dqk, ql, "%s.%d.self_attn.q_b_proj.weight", p, l);
        } else {
            add(&tb, (int64_t)H * dqk, D, "%s.%d.self_attn.q_proj.weight", p, l);
        }
        add(&tb, r + dr, D, "%s.%d.self_attn.kv_a_proj_with_mqa.weight", p, l);
        add(&tb, r, 0, "%s.%d.self_attn.kv_a_layernorm.weight", p, l);
        add(&tb, (int64_t)H * (dn + dv), r, "%s.%d.self_attn.kv_b_proj.weight", p, l);
        add(&tb, D, (int64_t)H * dv, "%s.%d.self_attn.o_proj.weight", p, l);
        add(&tb, D, 0, "%s.%d.post_attention_layernorm.weight", p, l);
        if (model_layer_is_moe(c, l)) {
            int E = c->n_routed_experts, Ie = c->moe_intermediate_size, Is = Ie * c->n_shared_experts;
            add(&tb, E, D, "%s.%d.mlp.gate.weight", p, l);
            for (int e = 0; e < E; e++) add(&tb, Ie, D, "%s.%d.mlp.experts.%d.gate_proj.weight", p, l, e);
            for (int e = 0; e < E; e++) add(&tb, Ie, D, "%s.%d.mlp.experts.%d.up_proj.weight", p, l, e);
            for (int e = 0; e < E; e++) add(&tb, D, Ie, "%s.%d.mlp.experts.%d.down_proj.weight", p, l, e);
            if (Is > 0) {
                add(&tb, Is, D, "%s.%d.mlp.shared_experts.gate_proj.weight", p, l);
                add(&tb, Is, D, "%s.%d.mlp.shared_experts.up_proj.weight", p, l);
                add(&tb, D, Is, "%s.%d.mlp.shared_experts.down_proj.weight", p, l);
            }
        } else {
            int I = c->intermediate_size;
            add(&tb, I, D, "%s.%d.mlp.gate_proj.weight", p, l);
            add(&tb, I, D, "%s.%d.mlp.up_proj.weight", p, l);
            add(&tb, D, I, "%s.%d.mlp.down_proj.weight", p, l);
        }
    }
    add(&tb, D, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) add(&tb, c->vocab_size, D, "lm_head.weight");
    *n = tb.n;
    *n_params = tb.total;
    return tb.t;
}

static float *next_view(const ParamTensor *t, int n, int *i, float *base) {
    CR_CHECK(*i < n);
    return base + t[(*i)++].offset;
}

/* Views follow the table order exactly; walk it with a cursor. */
void model_params_views(const ModelConfig *c, const ParamTensor *t, int n, float *base, ModelWeights *v) {
    int i = 0;
#define NEXT() next_view(t, n, &i, base)
    v->embed = NEXT();
    for (int l = 0; l < c->num_hidden_layers; l++) {
        LayerWeights *w = &v->layers[l];
        memset(w, 0, sizeof *w);
        w->attn_norm = NEXT();
        if (c->q_lora_rank > 0) {
            w->wq_a = NEXT();
            w->q_a_norm = NEXT();
            w->wq_b = NEXT();
        } else {
            w->wq = NEXT();
        }
        w->wkv_a = NEXT();
        w->kv_a_norm = NEXT();
        w->wkv_b = NEXT();
        w->wo = NEXT();
        w->ffn_norm = NEXT();
        if (model_layer_is_moe(c, l)) {
            int E = c->n_routed_experts;
            w->router = NEXT();
            w->exp_gate = NEXT();
            i += E - 1;
            w->exp_up = NEXT();
            i += E - 1;
            w->exp_down = NEXT();
            i += E - 1;
            if (c->n_shared_experts > 0) {
                w->sh_gate = NEXT();
                w->sh_up = NEXT();
                w->sh_down = NEXT();
            }
        } else {
            w->mlp_gate = NEXT();
            w->mlp_up = NEXT();
            w->mlp_down = NEXT();
        }
    }
    v->final_norm = NEXT();
    v->lm_head = c->tie_word_embeddings ? v->embed : NEXT();
    CR_CHECK(i == n);
#undef NEXT
}
