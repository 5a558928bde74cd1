/* model/io.c — model_load and model_save (model/model.h): a Hugging Face checkpoint
 * directory (config.json + model.safetensors or a sharded model.safetensors.index.json)
 * to and from the flat parameter buffer, tensor by tensor through the parameter table.
 *
 * Loading is strict: every table tensor must be present with exactly its HF shape, no
 * other tensor may be present (except the non-persistent "*.rotary_emb.inv_freq" some
 * exporters still write), and every value must be finite; errors name the tensor and
 * the file. Saving writes F32 (bit-exact round trip) atomically, weights before
 * config.json, so that a failure leaves whatever was there before. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/file.h"
#include "core/safetensors.h"
#include "model/ops.h"
#include "model/params.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static int extra_ok(const StTensor *t) {
    return ends_with(t->name, ".rotary_emb.inv_freq") || t->nbytes == 0;
}

static int in_table(const ParamTensor *tab, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(tab[i].name, name)) return 1;
    return 0;
}

/* Why a table tensor may be missing, from what the file holds in its place (a sentence
 * starting with "; ", or ""): a layer whose MLP kind the config reads differently, or
 * experts stored fused. */
static void missing_hint(char *buf, size_t cap, const char *name, const SafeTensors *s) {
    buf[0] = 0;
    int layer = -1, off = 0;
    if (sscanf(name, "model.layers.%d.mlp.%n", &layer, &off) != 1 || off == 0) return;
    char probe[160];
    if (strstr(name, ".mlp.experts.")) {
        snprintf(probe, sizeof probe, "model.layers.%d.mlp.experts.gate_up_proj", layer);
        if (st_find(s, probe)) {
            snprintf(buf, cap, "; the checkpoint stores layer %d's experts fused (%s): save it with one tensor per "
                               "expert (transformers: save_pretrained's default format)", layer, probe);
            return;
        }
    }
    int want_moe = strstr(name, ".mlp.experts.") || strstr(name, ".mlp.gate.weight") || strstr(name, ".mlp.shared_experts.");
    snprintf(probe, sizeof probe, want_moe ? "model.layers.%d.mlp.gate_proj.weight" : "model.layers.%d.mlp.gate.weight",
             layer);
    if (st_find(s, probe))
        snprintf(buf, cap, "; config.json makes layer %d %s (first_k_dense_replace, moe_layer_freq as DeepSeek's code "
                           "reads them) but the checkpoint has %s there (transformers ignores moe_layer_freq)",
                 layer, want_moe ? "an MoE layer" : "a dense MLP", want_moe ? "a dense MLP" : "an MoE layer");
}

/* s holds exactly the tensors of the table tab[0..n) (names, shapes, dtypes): checked from
 * the header alone, before any memory is set aside for the model, so a config.json that
 * does not describe the weights (e.g. a hidden_size that would need 57 GB) is an error
 * naming the tensor, not an allocation failure. */
static int check_tensors(const ParamTensor *tab, int n, const SafeTensors *s, const char *what, CrError *e) {
    for (int i = 0; i < n; i++) {
        const ParamTensor *p = &tab[i];
        const StTensor *t = st_find(s, p->name);
        if (!t) {
            char hint[400];
            missing_hint(hint, sizeof hint, p->name, s);
            return cr_error_set(e, "%s: missing tensor %s%s", what, p->name, hint);
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char want[96], got[200];
            shape_str(want, sizeof want, p->ndim, p->shape);
            shape_str(got, sizeof got, t->ndim, t->shape);
            return cr_error_set(e, "%s: tensor %s has shape %s, the config needs %s", t->file, p->name, got, want);
        }
        if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16 && t->dtype != ST_F64)
            return cr_error_set(e, "%s: tensor %s has dtype %s, expected F32, BF16, F16 or F64", t->file, p->name,
                                st_dtype_name(t->dtype));
    }
    /* Every table tensor is present and names are unique, so the file holds extras iff
     * it has more tensors than the table (besides tolerated inv_freq buffers); only then
     * look for them (model_find_tensor is a linear scan). */
    /* Tolerated extras: rotary inv_freq buffers, and empty tensors (transformers saves
     * zero-size shared_experts weights for n_shared_experts 0). */
    int n_file = 0;
    for (int i = 0; i < st_count(s); i++) n_file += !extra_ok(st_at(s, i));
    for (int i = 0; n_file > n && i < st_count(s); i++) {
        const StTensor *t = st_at(s, i);
        if (!extra_ok(t) && !in_table(tab, n, t->name))
            return cr_error_set(e, "%s: unexpected tensor %s (not in the model for this config.json)", t->file,
                                t->name);
    }
    return 0;
}

/* Fill m's parameters from s (checked by check_tensors first). */
static int load_tensors(Model *m, const SafeTensors *s, CrError *e) {
    /* The CPU backend's parameters are host memory: convert straight into them. */
    int direct = strcmp(m->ops->name, "cpu") == 0;
    size_t maxn = 1;
    for (int i = 0; i < m->n_tensors; i++) if (m->tensors[i].numel > maxn) maxn = m->tensors[i].numel;
    float *scratch = direct ? NULL : cr_alloc_aligned(sizeof(float) * maxn);
    int rc = 0;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const ParamTensor *p = &m->tensors[i];
        const StTensor *t = st_find(s, p->name);
        float *host = direct ? m->params + p->offset : scratch;
        if (st_read_f32(t, host, p->numel, e)) { rc = -1; break; }
        size_t bad = 0, first = 0;
        for (size_t j = p->numel; j-- > 0;)
            if (!isfinite(host[j])) bad++, first = j;
        if (bad) {
            rc = cr_error_set(e, "%s: tensor %s has %zu non-finite value(s) (first at flat index %zu)", t->file,
                              p->name, bad, first);
            break;
        }
        if (!direct) m->ops->upload(m->params + p->offset, host, sizeof(float) * p->numel);
    }
    cr_free_aligned(scratch);
    return rc;
}

Model *model_load(const char *dir, CrError *e) { return model_load_ops(dir, ops_cpu(), e); }

Model *model_load_ops(const char *dir, const Ops *ops, CrError *e) {
    char *cfg_path = cr_path_join(dir, "config.json");
    ModelConfig cfg;
    int rc = model_config_load(&cfg, cfg_path, e);
    free(cfg_path);
    if (rc) return NULL;
    char *single = cr_path_join(dir, "model.safetensors");
    char *index = cr_path_join(dir, "model.safetensors.index.json");
    const char *path = cr_file_exists(single) ? single : cr_file_exists(index) ? index : NULL;
    Model *m = NULL;
    if (!path) {
        cr_error_set(e, "%s: neither model.safetensors nor model.safetensors.index.json exists", dir);
        goto out;
    }
    SafeTensors *s = st_open(path, e);
    if (!s) goto out;
    int n_tab = 0;
    size_t n_par = 0;
    ParamTensor *tab = model_params_layout(&cfg, &n_tab, &n_par);  /* cfg validated by model_config_load */
    if (check_tensors(tab, n_tab, s, path, e) == 0) m = model_create_ops(&cfg, ops, e);
    free(tab);
    if (m && load_tensors(m, s, e)) {
        model_free(m);
        m = NULL;
    }
    st_close(s);
out:
    free(single);
    free(index);
    return m;
}

int model_save(const Model *m, const char *dir, CrError *e) {
    if (cr_mkdir_p(dir, e)) return -1;
    /* Backend memory -> host once (the CPU backend's params are already host memory). */
    const float *host = m->params;
    float *copy = NULL;
    if (strcmp(m->ops->name, "cpu") != 0) {
        copy = cr_malloc(sizeof(float) * (m->n_params ? m->n_params : 1));
        m->ops->download(copy, m->params, sizeof(float) * m->n_params);
        host = copy;
    }
    StEntry *ent = cr_calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *ent);
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *p = &m->tensors[i];
        ent[i] = (StEntry){.name = p->name, .dtype = ST_F32, .ndim = p->ndim, .data = host + p->offset};
        for (int d = 0; d < p->ndim; d++) ent[i].shape[d] = p->shape[d];
    }
    char *path = cr_path_join(dir, "model.safetensors");
    int rc = st_write(path, ent, m->n_tensors, "{\"format\":\"pt\"}", e);
    free(path);
    free(ent);
    free(copy);
    if (rc) return -1;
    char *js = model_config_to_json(&m->cfg);
    char *cfg_path = cr_path_join(dir, "config.json");
    rc = cr_write_file_atomic(cfg_path, js, strlen(js), e);
    free(cfg_path);
    free(js);
    return rc;
}
