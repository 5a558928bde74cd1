/* rollout/sampler.c — see sampler.h */
#include "rollout/sampler.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

/* Sort order for truncation: probability descending, then token id ascending. */
typedef struct ProbId { double p; int32_t id; } ProbId;

SamplerScratch *sampler_scratch_new(int n_vocab) {
    SamplerScratch *s = cr_calloc(1, sizeof *s);
    s->n_vocab = n_vocab;
    s->prob = cr_malloc((size_t)n_vocab * sizeof *s->prob);
    s->idx = cr_malloc((size_t)n_vocab * sizeof *s->idx);
    s->kept = cr_malloc((size_t)n_vocab);
    s->order = cr_malloc((size_t)n_vocab * sizeof *s->order);
    return s;
}

void sampler_scratch_free(SamplerScratch *s) {
    if (!s) return;
    free(s->prob);
    free(s->idx);
    free(s->kept);
    free(s->order);
    free(s);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;  /* strict: lowest id wins ties */
    return best;
}

/* exp(x) for 16 floats: Cephes' expf (range reduction by ln 2, degree-6 polynomial,
 * about 1 ulp); inputs below -87.3 clamp there (result ~1e-38, never 0 for a kept token). */
__attribute__((target("avx512f")))
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

/* out[i] = exp((x[i] - m) * scale) (out may be NULL); returns the sum, accumulated in
 * double in a fixed order (16 lanes, then the lanes in order, then the tail). */
__attribute__((target("avx512f")))
static double exp_shifted_avx512(const float *x, int n, float m, float scale, double *out) {
    __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(scale);
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), vs));
        __m512d dl = _mm512_cvtps_pd(_mm512_castps512_ps256(e));
        __m512d dh = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
        lo = _mm512_add_pd(lo, dl);
        hi = _mm512_add_pd(hi, dh);
        if (out) {
            _mm512_storeu_pd(out + i, dl);
            _mm512_storeu_pd(out + i + 8, dh);
        }
    }
    double l[8], h[8], sum = 0;
    _mm512_storeu_pd(l, lo);
    _mm512_storeu_pd(h, hi);
    for (int k = 0; k < 8; k++) sum += l[k] + h[k];
    if (i < n) {
        __mmask16 mk = (__mmask16)((1u << (n - i)) - 1u);
        __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), vm), vs));
        float t[16];
        _mm512_storeu_ps(t, e);
        for (int k = 0; k < n - i; k++) {
            sum += t[k];
            if (out) out[i + k] = t[k];
        }
    }
    return sum;
}

static double exp_shifted(const float *x, int n, float m, float scale, double *out) {
    if (__builtin_cpu_supports("avx512f")) return exp_shifted_avx512(x, n, m, scale, out);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double e = expf((x[i] - m) * scale);
        sum += e;
        if (out) out[i] = e;
    }
    return sum;
}

/* sum_i exp(logits[i] - m) */
static double sum_exp(const float *logits, int n, float m) { return exp_shifted(logits, n, m, 1.0f, NULL); }

double sampler_log_softmax_at(const float *logits, int n_vocab, int32_t token) {
    float m = logits[argmax(logits, n_vocab)];
    return (double)logits[token] - m - log(sum_exp(logits, n_vocab, m));
}

static int cmp_desc(const void *a, const void *b) {
    const ProbId *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

int sampler_keep_set(const SamplerCfg *c, const float *logits, int n_vocab, SamplerScratch *s,
                     int32_t *keep, double *prob_out) {
    if (c->temperature <= 0.0f) {
        keep[0] = argmax(logits, n_vocab);
        if (prob_out) prob_out[0] = 1.0;
        return 1;
    }
    double *p = s->prob;
    unsigned char *kept = s->kept;
    float inv_t = 1.0f / c->temperature;
    float m = logits[argmax(logits, n_vocab)];
    double sum = exp_shifted(logits, n_vocab, m, inv_t, p);
    for (int i = 0; i < n_vocab; i++) p[i] /= sum;
    memset(kept, 1, (size_t)n_vocab);

    int use_k = c->top_k > 0 && c->top_k < n_vocab;
    int use_p = c->top_p > 0.0f && c->top_p < 1.0f;
    if (use_k || use_p) {
        /* Only tokens at or above a threshold can survive: lower it (by 16x steps) until
         * the candidates hold the top-k, or top_p of the mass; sort just those. Tokens
         * below it are never kept (they rank after every candidate). */
        double pmax = 0;
        for (int i = 0; i < n_vocab; i++) pmax = p[i] > pmax ? p[i] : pmax;
        double tau = pmax;
        int nc = 0;
        for (;;) {
            double mass = 0;
            nc = 0;
            for (int i = 0; i < n_vocab; i++)
                if (p[i] >= tau) {
                    nc++;
                    mass += p[i];
                }
            if (tau == 0 || (use_k ? nc >= c->top_k : mass >= (double)c->top_p)) break;
            tau = tau < 1e-30 ? 0 : tau / 16;
        }
        ProbId *order = s->order;
        int j = 0;
        for (int i = 0; i < n_vocab; i++) {
            if (p[i] >= tau) order[j++] = (ProbId){p[i], i};
            else kept[i] = 0;
        }
        qsort(order, (size_t)nc, sizeof *order, cmp_desc);
        int n = nc;
        if (use_k && c->top_k < nc) {
            for (int r = c->top_k; r < nc; r++) kept[order[r].id] = 0;
            n = c->top_k;
        }
        if (use_p) {
            /* renormalise over the top-k set, or over the whole vocabulary */
            double mass = 0;
            if (use_k)
                for (int r = 0; r < n; r++) mass += order[r].p;
            else
                for (int i = 0; i < n_vocab; i++) mass += p[i];
            double limit = (double)c->top_p * mass, before = 0;
            for (int r = 0; r < n; r++) {
                if (r > 0 && before >= limit) kept[order[r].id] = 0;
                before += order[r].p;
            }
        }
    }
    if (c->min_p > 0.0f) {
        double pmax = 0;
        for (int i = 0; i < n_vocab; i++)
            if (kept[i] && p[i] > pmax) pmax = p[i];
        double thr = (double)c->min_p * pmax;
        for (int i = 0; i < n_vocab; i++)
            if (kept[i] && p[i] < thr) kept[i] = 0;
    }
    int n = 0;
    double total = 0;
    for (int i = 0; i < n_vocab; i++)
        if (kept[i]) {
            keep[n++] = i;
            total += p[i];
        }
    if (prob_out)
        for (int j = 0; j < n; j++) prob_out[j] = p[keep[j]] / total;
    return n;
}

int32_t sampler_sample(const SamplerCfg *c, const float *logits, int n_vocab, SamplerScratch *s,
                       CrRng *rng, float *logp_sampled, float *logp_model) {
    int32_t tok;
    double lp;
    int truncate = (c->top_k > 0 && c->top_k < n_vocab) || (c->top_p > 0.0f && c->top_p < 1.0f) ||
                   c->min_p > 0.0f;
    if (c->temperature <= 0.0f) {
        tok = argmax(logits, n_vocab);
        lp = 0.0;
    } else if (!truncate) {
        /* the whole tempered softmax: one exp pass (two when T != 1 for the model's) */
        float m = logits[argmax(logits, n_vocab)], inv_t = 1.0f / c->temperature;
        double *e = s->prob, sum = exp_shifted(logits, n_vocab, m, inv_t, e);
        double u = cr_rng_uniform(rng) * sum, cum = 0;
        tok = n_vocab - 1;
        for (int i = 0; i < n_vocab; i++) {
            cum += e[i];
            if (u < cum) {
                tok = i;
                break;
            }
        }
        while (e[tok] == 0.0 && tok > 0) tok--;  /* never return a zero-probability token */
        lp = log(e[tok] / sum);
        if (logp_sampled) *logp_sampled = (float)lp;
        if (logp_model)
            *logp_model = (float)(c->temperature == 1.0f ? (double)logits[tok] - m - log(sum)
                                                         : sampler_log_softmax_at(logits, n_vocab, tok));
        return tok;
    } else {
        /* s->prob still holds the tempered probabilities after sampler_keep_set. */
        int32_t *keep = s->idx;
        int n = sampler_keep_set(c, logits, n_vocab, s, keep, NULL);
        double total = 0;
        for (int j = 0; j < n; j++) total += s->prob[keep[j]];
        double u = cr_rng_uniform(rng) * total, cum = 0;
        tok = keep[n - 1];
        for (int j = 0; j < n; j++) {
            cum += s->prob[keep[j]];
            if (u < cum) {
                tok = keep[j];
                break;
            }
        }
        lp = log(s->prob[tok] / total);
    }
    if (logp_sampled) *logp_sampled = (float)lp;
    if (logp_model) *logp_model = (float)sampler_log_softmax_at(logits, n_vocab, tok);
    return tok;
}

int sampler_cfg_check(const SamplerCfg *c, CrError *e) {
    if (!(c->temperature >= 0) || !isfinite(c->temperature))
        return cr_error_set(e, "--temperature must be a finite number >= 0 (got %g)", (double)c->temperature);
    if (c->top_k < 0) return cr_error_set(e, "--top-k must be >= 0 (0 = off; got %d)", c->top_k);
    if (!(c->top_p >= 0 && c->top_p <= 1))
        return cr_error_set(e, "--top-p must be in (0, 1] (1 = off; got %g)", (double)c->top_p);
    if (!(c->min_p >= 0 && c->min_p <= 1))
        return cr_error_set(e, "--min-p must be in [0, 1] (0 = off; got %g)", (double)c->min_p);
    return 0;
}

int sampler_flags_check(const SamplerCfg *c, CrError *e) {
    if (!(c->top_p > 0)) return cr_error_set(e, "--top-p must be in (0, 1] (1 = off; got %g)", (double)c->top_p);
    return sampler_cfg_check(c, e);
}
