/* tests/model/test_ops.c — every op of model/ops.h through the backend table: forward
 * against direct double-precision formulas, backward against central finite differences
 * of L = sum R * out. The CPU table is tested here; a CUDA table would run the same. */
#include "tests/test.h"
#include "tests/model/fd.h"
#include "model/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const Ops *ops(void) { return ops_cpu(); }

/* ---- RMSNorm ---------------------------------------------------------------------- */
typedef struct { float *x, *w, *out, *rstd, *R; int N, D, ldx, ldo; } NormCtx;
static double norm_f(void *p) {
    NormCtx *c = p;
    ops()->rmsnorm_forward(c->out, c->ldo, c->rstd, c->x, c->ldx, c->w, c->N, c->D, 1e-6f);
    double s = 0;
    for (int n = 0; n < c->N; n++) s += fd_dot(c->R + n * c->D, c->out + n * c->ldo, c->D);
    return s;
}
TEST(ops_rmsnorm_grad) {
    enum { N = 5, D = 7, LDX = 9, LDO = 8 };
    float x[N * LDX], w[D], out[N * LDO], rstd[N], R[N * D], dx[N * LDX], dw[D], dout[N * LDO];
    fd_fill(x, N * LDX, 1, 1.0f);
    fd_fill(w, D, 2, 1.0f);
    fd_fill(R, N * D, 3, 1.0f);
    NormCtx c = {x, w, out, rstd, R, N, D, LDX, LDO};
    norm_f(&c);
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[n * LDX + i] * x[n * LDX + i];
        double r = 1 / sqrt(ss / D + 1e-6);
        for (int i = 0; i < D; i++) CHECK_NEAR(out[n * LDO + i], w[i] * x[n * LDX + i] * r, 1e-6);
    }
    memset(dx, 0, sizeof dx);
    memset(dw, 0, sizeof dw);
    for (int n = 0; n < N; n++) memcpy(dout + n * LDO, R + n * D, sizeof(float) * D);
    ops()->rmsnorm_backward(dx, LDX, dw, dout, LDO, x, LDX, w, rstd, N, D);
    CHECK(fd_check("dx", norm_f, &c, x, dx, N * LDX, 1e-3, 1e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("dw", norm_f, &c, w, dw, D, 1e-3, 1e-4, 1e-2, 1000) == 0);
}

/* ---- RoPE ------------------------------------------------------------------------- */
typedef struct { float *x, *y, *R, *inv; int32_t *pos; } RopeCtx;
enum { RN = 4, RH = 3, RHS = 10, RDR = 6, RLD = RH * RHS };
static double rope_f(void *p) {
    RopeCtx *c = p;
    memcpy(c->y, c->x, sizeof(float) * RN * RLD);
    ops()->rope_forward(c->y + 2, RLD, RHS, RH, RN, RDR, c->pos, c->inv, 1.1f);
    return fd_dot(c->R, c->y, RN * RLD);
}
TEST(ops_rope_grad) {
    float x[RN * RLD], y[RN * RLD], R[RN * RLD], dx[RN * RLD], inv[3] = {1.0f, 0.3f, 0.01f};
    int32_t pos[RN] = {0, 3, 17, 40};
    fd_fill(x, RN * RLD, 4, 1.0f);
    fd_fill(R, RN * RLD, 5, 1.0f);
    RopeCtx c = {x, y, R, inv, pos};
    rope_f(&c);
    /* token 2, head 1, pair 1 (dims 2,3 of the rotated block): spec §5.3 formula */
    {
        int base = 2 * RLD + 1 * RHS + 2 + 2;
        double th = 17.0f * 0.3f, a = x[base], b = x[base + 1];
        CHECK_NEAR(y[base], 1.1 * (a * cos(th) - b * sin(th)), 1e-5);
        CHECK_NEAR(y[base + 1], 1.1 * (a * sin(th) + b * cos(th)), 1e-5);
        CHECK(y[2 * RLD + 1 * RHS + 1] == x[2 * RLD + 1 * RHS + 1]);  /* outside the rotated dims */
    }
    memcpy(dx, R, sizeof dx);
    ops()->rope_backward(dx + 2, RLD, RHS, RH, RN, RDR, pos, inv, 1.1f);
    CHECK(fd_check("dx", rope_f, &c, x, dx, RN * RLD, 1e-2, 1e-4, 1e-3, 1000) == 0);
}

/* ---- SwiGLU ----------------------------------------------------------------------- */
typedef struct { float *g, *u, *h, *R; } SwiCtx;
static double swi_f(void *p) {
    SwiCtx *c = p;
    ops()->swiglu_forward(c->h, c->g, c->u, 50);
    return fd_dot(c->R, c->h, 50);
}
TEST(ops_swiglu_grad) {
    float g[50], u[50], h[50], R[50], dg[50], du[50];
    fd_fill(g, 50, 6, 2.0f);
    fd_fill(u, 50, 7, 1.0f);
    fd_fill(R, 50, 8, 1.0f);
    SwiCtx c = {g, u, h, R};
    swi_f(&c);
    for (int i = 0; i < 50; i++) CHECK_NEAR(h[i], g[i] / (1 + exp(-(double)g[i])) * u[i], 1e-6);
    ops()->swiglu_backward(dg, du, R, g, u, 50);
    CHECK(fd_check("dg", swi_f, &c, g, dg, 50, 1e-3, 1e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("du", swi_f, &c, u, du, 50, 1e-3, 1e-4, 1e-2, 1000) == 0);
}

/* ---- attention -------------------------------------------------------------------- */
enum { AN = 11, AS = 3, AH = 2, AQ = 5, AV = 3 };
typedef struct { float *Q, *K, *V, *O, *lse, *R; int32_t *cu; } AttCtx;
static double att_f(void *p) {
    AttCtx *c = p;
    ops()->attention_forward(c->O, c->lse, c->Q, c->K, c->V, c->cu, AS, AN, AH, AQ, AV, 0.7f);
    return fd_dot(c->R, c->O, AN * AH * AV);
}
TEST(ops_attention_varlen_grad) {
    float Q[AN * AH * AQ], K[AN * AH * AQ], V[AN * AH * AV], O[AN * AH * AV], lse[AN * AH], R[AN * AH * AV];
    float dQ[AN * AH * AQ], dK[AN * AH * AQ], dV[AN * AH * AV];
    int32_t cu[AS + 1] = {0, 1, 5, 11};
    fd_fill(Q, sizeof Q / 4, 9, 1.0f);
    fd_fill(K, sizeof K / 4, 10, 1.0f);
    fd_fill(V, sizeof V / 4, 11, 1.0f);
    fd_fill(R, sizeof R / 4, 12, 1.0f);
    AttCtx c = {Q, K, V, O, lse, R, cu};
    att_f(&c);
    /* naive reference: full softmax over the causal prefix of the token's own sequence */
    for (int s = 0; s < AS; s++)
        for (int n = cu[s]; n < cu[s + 1]; n++)
            for (int h = 0; h < AH; h++) {
                double sc[AN], m = -1e300, z = 0;
                for (int j = cu[s]; j <= n; j++) {
                    double d = 0;
                    for (int i = 0; i < AQ; i++) d += (double)Q[(n * AH + h) * AQ + i] * K[(j * AH + h) * AQ + i];
                    sc[j] = 0.7 * d;
                    if (sc[j] > m) m = sc[j];
                }
                for (int j = cu[s]; j <= n; j++) z += exp(sc[j] - m);
                for (int i = 0; i < AV; i++) {
                    double o = 0;
                    for (int j = cu[s]; j <= n; j++) o += exp(sc[j] - m) / z * V[(j * AH + h) * AV + i];
                    CHECK_NEAR(O[(n * AH + h) * AV + i], o, 1e-5);
                }
                CHECK_NEAR(lse[n * AH + h], m + log(z), 1e-5);
            }
    ops()->attention_backward(dQ, dK, dV, R, O, lse, Q, K, V, cu, AS, AN, AH, AQ, AV, 0.7f);
    CHECK(fd_check("dQ", att_f, &c, Q, dQ, sizeof Q / 4, 1e-3, 2e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("dK", att_f, &c, K, dK, sizeof K / 4, 1e-3, 2e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("dV", att_f, &c, V, dV, sizeof V / 4, 1e-3, 2e-4, 1e-2, 1000) == 0);
}

/* ---- MLA kv assembly -------------------------------------------------------------- */
enum { KN = 3, KH = 2, KDN = 2, KDR = 3, KDV = 4, KLD = 5 };
typedef struct { float *kv, *kpe, *K, *V, *RK, *RV; } KvCtx;
static double kv_f(void *p) {
    KvCtx *c = p;
    ops()->mla_kv_assemble_forward(c->K, c->V, c->kv, c->kpe + 1, KLD, KN, KH, KDN, KDR, KDV);
    return fd_dot(c->RK, c->K, KN * KH * (KDN + KDR)) + fd_dot(c->RV, c->V, KN * KH * KDV);
}
TEST(ops_mla_kv_assemble_grad) {
    float kv[KN * KH * (KDN + KDV)], kpe[KN * KLD], K[KN * KH * (KDN + KDR)], V[KN * KH * KDV];
    float RK[KN * KH * (KDN + KDR)], RV[KN * KH * KDV], dkv[KN * KH * (KDN + KDV)], dkpe[KN * KLD];
    fd_fill(kv, sizeof kv / 4, 13, 1.0f);
    fd_fill(kpe, sizeof kpe / 4, 14, 1.0f);
    fd_fill(RK, sizeof RK / 4, 15, 1.0f);
    fd_fill(RV, sizeof RV / 4, 16, 1.0f);
    KvCtx c = {kv, kpe, K, V, RK, RV};
    kv_f(&c);
    CHECK(K[(2 * KH + 1) * (KDN + KDR) + KDN + 2] == kpe[2 * KLD + 1 + 2]);  /* shared k_pe in head 1 */
    CHECK(V[(1 * KH + 1) * KDV + 3] == kv[(1 * KH + 1) * (KDN + KDV) + KDN + 3]);
    memset(dkpe, 0, sizeof dkpe);
    ops()->mla_kv_assemble_backward(dkv, dkpe + 1, KLD, RK, RV, KN, KH, KDN, KDR, KDV);
    CHECK(fd_check("dkv", kv_f, &c, kv, dkv, sizeof kv / 4, 1e-2, 1e-4, 1e-3, 1000) == 0);
    CHECK(fd_check("dkpe", kv_f, &c, kpe, dkpe, sizeof kpe / 4, 1e-2, 1e-4, 1e-3, 1000) == 0);
}

/* ---- router ----------------------------------------------------------------------- */
TEST(ops_moe_route_selection) {
    /* probs chosen so that group-limited and greedy selections differ (spec §6.1):
     * groups of 2; group maxima .30 .20 .03 .24 -> groups {0, 3} kept. */
    const double p[8] = {0.30, 0.01, 0.20, 0.05, 0.02, 0.03, 0.15, 0.24};
    float lg[8], probs[8], w[3];
    int32_t idx[3];
    for (int e = 0; e < 8; e++) lg[e] = (float)log(p[e]) + 1.5f;
    OpsMoeRoute r = {.E = 8, .K = 3, .group_limited = 1, .n_group = 4, .topk_group = 2, .routed_scale = 2.0f};
    ops()->moe_route_forward(probs, idx, w, lg, 1, &r);
    for (int e = 0; e < 8; e++) CHECK_NEAR(probs[e], p[e], 1e-6);
    CHECK(idx[0] == 0 && idx[1] == 7 && idx[2] == 6);
    CHECK_NEAR(w[0], 0.60, 1e-6);
    CHECK_NEAR(w[1], 0.48, 1e-6);
    CHECK_NEAR(w[2], 0.30, 1e-6);
    r.group_limited = 0;
    ops()->moe_route_forward(probs, idx, w, lg, 1, &r);
    CHECK(idx[0] == 0 && idx[1] == 7 && idx[2] == 2);
    r.norm_topk_prob = 1;  /* renormalised, and then NOT scaled (spec §6.1, [RC]) */
    ops()->moe_route_forward(probs, idx, w, lg, 1, &r);
    CHECK_NEAR(w[0], 0.30 / 0.74, 1e-6);
    CHECK_NEAR(w[2], 0.20 / 0.74, 1e-6);
}

enum { MN = 6, ME = 8, MK = 3 };
typedef struct { float *logits, *probs, *w, *Rw, *coef, *loss; int32_t *idx, *seg, *cu; int nseg; float auxw; OpsMoeRoute r; } RouteCtx;
static double route_f(void *p) {
    RouteCtx *c = p;
    ops()->moe_route_forward(c->probs, c->idx, c->w, c->logits, MN, &c->r);
    ops()->moe_aux_forward(c->loss, c->coef, c->seg, c->probs, c->idx, c->cu, c->nseg, MN, ME, MK, 0.3f);
    return fd_dot(c->Rw, c->w, MN * MK) + c->auxw * (double)c->loss[0];
}
static void route_grad_case(TestCtx *t_, int group_limited, int norm_topk, int nseg) {
    float logits[MN * ME], probs[MN * ME], w[MN * MK], Rw[MN * MK], coef[2 * ME], loss[1], dl[MN * ME];
    int32_t idx[MN * MK], seg[MN], cu[3] = {0, 2, 6};
    fd_fill(logits, MN * ME, 17 + nseg + 2 * norm_topk, 1.5f);
    fd_fill(Rw, MN * MK, 18, 1.0f);
    RouteCtx c = {logits, probs, w, Rw, coef, loss, idx, seg, cu, nseg, 0.8f,
                  {.E = ME, .K = MK, .group_limited = group_limited, .n_group = 4, .topk_group = 2,
                   .norm_topk_prob = norm_topk, .routed_scale = 1.7f}};
    route_f(&c);
    /* aux value from the spec formula, in double */
    double want = 0;
    for (int s = 0; s < nseg; s++) {
        int t0 = nseg == 1 ? 0 : cu[s], t1 = nseg == 1 ? MN : cu[s + 1], T = t1 - t0;
        for (int e = 0; e < ME; e++) {
            double cnt = 0, P = 0;
            for (int t = t0; t < t1; t++) {
                P += probs[t * ME + e] / T;
                for (int k = 0; k < MK; k++) cnt += idx[t * MK + k] == e;
            }
            want += cnt * ME / ((double)MK * T) * P;
        }
    }
    CHECK_NEAR(loss[0], 0.3 * want / nseg, 1e-6);
    ops()->moe_route_backward(dl, Rw, probs, idx, w, coef, 0.8f, seg, MN, &c.r);
    CHECKF(fd_check("dlogits", route_f, &c, logits, dl, MN * ME, 1e-3, 2e-4, 1e-2, 1000) == 0,
           "group_limited %d norm_topk %d nseg %d", group_limited, norm_topk, nseg);
}
TEST(ops_moe_route_aux_grad) {
    route_grad_case(t_, 0, 0, 2);
    route_grad_case(t_, 1, 0, 2);
    route_grad_case(t_, 1, 1, 1);
    route_grad_case(t_, 0, 1, 2);
}

/* ---- permute / experts / unpermute ------------------------------------------------- */
enum { XN = 7, XD = 5, XE = 4, XK = 2, XI = 3 };
typedef struct {
    float *x, *Wg, *Wu, *Wd, *w, *y, *R, *Xp, *G, *U, *Hm, *Yp;
    int32_t *idx, *ros, *sor, *off, *off_h;
} DispCtx;
static double disp_f(void *p) {
    DispCtx *c = p;
    ops()->moe_permute(c->Xp, c->ros, c->sor, c->off, c->x, c->idx, XN, XD, XE, XK);
    memcpy(c->off_h, c->off, sizeof(int32_t) * (XE + 1));
    ops()->moe_experts_forward(c->Yp, c->G, c->U, c->Hm, c->Xp, c->Wg, c->Wu, c->Wd, c->off_h, XE, XD, XI);
    ops()->moe_unpermute(c->y, c->Yp, c->w, c->ros, XN, XD, XK);
    return fd_dot(c->R, c->y, XN * XD);
}
TEST(ops_moe_dispatch_grad) {
    float x[XN * XD], Wg[XE * XI * XD], Wu[XE * XI * XD], Wd[XE * XD * XI], w[XN * XK], y[XN * XD], R[XN * XD];
    float Xp[XN * XK * XD], G[XN * XK * XI], U[XN * XK * XI], Hm[XN * XK * XI], Yp[XN * XK * XD];
    float dXp[XN * XK * XD], dG[XN * XK * XI], dU[XN * XK * XI], dHm[XN * XK * XI], dYp[XN * XK * XD];
    float dx[XN * XD], dWg[XE * XI * XD], dWu[XE * XI * XD], dWd[XE * XD * XI], dw[XN * XK];
    /* expert 3 gets no token; expert 1 most */
    int32_t idx[XN * XK] = {1, 0, 2, 1, 1, 2, 0, 1, 1, 2, 2, 0, 1, 0}, ros[XN * XK], sor[XN * XK], off[XE + 1], offh[XE + 1];
    fd_fill(x, sizeof x / 4, 19, 1.0f);
    fd_fill(Wg, sizeof Wg / 4, 20, 0.7f);
    fd_fill(Wu, sizeof Wu / 4, 21, 0.7f);
    fd_fill(Wd, sizeof Wd / 4, 22, 0.7f);
    fd_fill(w, sizeof w / 4, 23, 1.0f);
    fd_fill(R, sizeof R / 4, 24, 1.0f);
    DispCtx c = {x, Wg, Wu, Wd, w, y, R, Xp, G, U, Hm, Yp, idx, ros, sor, off, offh};
    disp_f(&c);
    CHECK(off[0] == 0 && off[1] == 4 && off[2] == 10 && off[3] == 14 && off[4] == 14);
    for (int r = 1; r < XN * XK; r++)  /* stable: sorted by (expert, slot) */
        CHECK(idx[sor[r - 1]] < idx[sor[r]] || (idx[sor[r - 1]] == idx[sor[r]] && sor[r - 1] < sor[r]));
    for (int n = 0; n < XN; n++)
        for (int d = 0; d < XD; d++) {
            double acc = 0;
            for (int k = 0; k < XK; k++) {
                int e = idx[n * XK + k];
                double out = 0;
                for (int i = 0; i < XI; i++) {
                    double g = 0, u = 0;
                    for (int j = 0; j < XD; j++) {
                        g += (double)Wg[(e * XI + i) * XD + j] * x[n * XD + j];
                        u += (double)Wu[(e * XI + i) * XD + j] * x[n * XD + j];
                    }
                    out += Wd[(e * XD + d) * XI + i] * (g / (1 + exp(-g)) * u);
                }
                acc += w[n * XK + k] * out;
            }
            CHECK_NEAR(y[n * XD + d], acc, 1e-5);
        }
    memset(dx, 0, sizeof dx);
    memset(dWg, 0, sizeof dWg);
    memset(dWu, 0, sizeof dWu);
    memset(dWd, 0, sizeof dWd);
    ops()->moe_unpermute_backward(dYp, dw, R, Yp, w, ros, sor, XN, XD, XK);
    ops()->moe_experts_backward(dXp, dWg, dWu, dWd, dYp, dG, dU, dHm, Xp, G, U, Hm, Wg, Wu, Wd, offh, XE, XD, XI);
    ops()->moe_permute_backward(dx, dXp, ros, XN, XD, XK);
    CHECK(fd_check("dx", disp_f, &c, x, dx, sizeof x / 4, 1e-2, 2e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("dWg", disp_f, &c, Wg, dWg, sizeof Wg / 4, 1e-2, 2e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("dWu", disp_f, &c, Wu, dWu, sizeof Wu / 4, 1e-2, 2e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("dWd", disp_f, &c, Wd, dWd, sizeof Wd / 4, 1e-2, 2e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("dw", disp_f, &c, w, dw, sizeof w / 4, 1e-2, 2e-4, 1e-2, 1000) == 0);
}

/* ---- LM head ---------------------------------------------------------------------- */
enum { LN = 3, LD = 4, LV = 4500 };  /* 3 vocabulary chunks, the last one partial */
typedef struct { float *y, *W, *logp, *lse, *R, *scratch; int32_t *tg; } LmCtx;
static double lm_f(void *p) {
    LmCtx *c = p;
    ops()->lmhead_logprob_forward(c->logp, c->lse, c->y, c->W, c->tg, LN, LV, LD, c->scratch);
    return fd_dot(c->R, c->logp, LN);
}
TEST(ops_lmhead_logprob_grad) {
    float y[LN * LD], dy[LN * LD], logp[LN], lse[LN], R[LN] = {0.7f, -1.3f, 2.0f};
    float *W = malloc(sizeof(float) * LV * LD), *dW = calloc(LV * LD, sizeof(float));
    float *scratch = malloc(sizeof(float) * ops_lmhead_scratch_floats());
    int32_t tg[LN] = {5, LV - 1, -1};
    fd_fill(y, sizeof y / 4, 25, 1.0f);
    fd_fill(W, LV * LD, 26, 1.0f);
    LmCtx c = {y, W, logp, lse, R, scratch, tg};
    lm_f(&c);
    for (int n = 0; n < LN; n++) {
        double mx = -1e300, z = 0, *lg = malloc(sizeof(double) * LV);
        for (int v = 0; v < LV; v++) {
            double s = 0;
            for (int i = 0; i < LD; i++) s += (double)y[n * LD + i] * W[v * LD + i];
            lg[v] = s;
            mx = s > mx ? s : mx;
        }
        for (int v = 0; v < LV; v++) z += exp(lg[v] - mx);
        CHECK_NEAR(lse[n], mx + log(z), 1e-5);
        CHECK_NEAR(logp[n], tg[n] >= 0 ? lg[tg[n]] - mx - log(z) : 0.0, 1e-5);
        free(lg);
    }
    ops()->lmhead_logprob_backward(dy, 0.0f, dW, R, lse, y, W, tg, LN, LV, LD, scratch);
    CHECK(fd_check("dy", lm_f, &c, y, dy, LN * LD, 1e-2, 2e-4, 1e-2, 1000) == 0);
    CHECK(fd_check("dW", lm_f, &c, W, dW, LV * LD, 5e-2, 5e-5, 1e-2, 300) == 0);
    /* the rows of targets 5 and LV-1 carry the onehot term: check them exactly */
    CHECK(fd_check("dW[5]", lm_f, &c, W + 5 * LD, dW + 5 * LD, LD, 1e-2, 2e-4, 1e-2, 100) == 0);
    CHECK(fd_check("dW[V-1]", lm_f, &c, W + (LV - 1) * LD, dW + (LV - 1) * LD, LD, 1e-2, 2e-4, 1e-2, 100) == 0);
    free(W); free(dW); free(scratch);
}

/* ---- embedding -------------------------------------------------------------------- */
TEST(ops_embedding_scatter) {
    float table[5 * 3], out[4 * 3], dout[4 * 3], dt[5 * 3] = {0};
    int32_t tok[4] = {3, 1, 3, 0};
    fd_fill(table, 15, 27, 1.0f);
    fd_fill(dout, 12, 28, 1.0f);
    ops()->embedding_forward(out, table, tok, 4, 3);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 3; i++) CHECK(out[t * 3 + i] == table[tok[t] * 3 + i]);
    ops()->embedding_backward(dt, dout, tok, 4, 3);
    for (int i = 0; i < 3; i++) {
        CHECK(dt[3 * 3 + i] == dout[0 * 3 + i] + dout[2 * 3 + i]);
        CHECK(dt[1 * 3 + i] == dout[1 * 3 + i] && dt[0 * 3 + i] == dout[3 * 3 + i]);
        CHECK(dt[2 * 3 + i] == 0 && dt[4 * 3 + i] == 0);
    }
}

/* More rows than one LM-head row block (OPS_LMHEAD_ROWS): every block's rows get their own
 * logsumexp and gradient. */
enum { BN = OPS_LMHEAD_ROWS * 2 + 77, BD = 3, BV = 50 };
typedef struct { float *y, *W, *logp, *lse, *R, *scratch; int32_t *tg; } LmBigCtx;
static double lmbig_f(void *p) {
    LmBigCtx *c = p;
    ops()->lmhead_logprob_forward(c->logp, c->lse, c->y, c->W, c->tg, BN, BV, BD, c->scratch);
    return fd_dot(c->R, c->logp, BN);
}
TEST(ops_lmhead_logprob_row_blocks) {
    float *y = malloc(sizeof(float) * BN * BD), *dy = malloc(sizeof(float) * BN * BD), W[BV * BD], dW[BV * BD] = {0};
    float *logp = malloc(sizeof(float) * BN), *lse = malloc(sizeof(float) * BN), *R = malloc(sizeof(float) * BN);
    float *scratch = malloc(sizeof(float) * ops_lmhead_scratch_floats());
    int32_t *tg = malloc(sizeof(int32_t) * BN);
    fd_fill(y, BN * BD, 40, 1.0f);
    fd_fill(W, BV * BD, 41, 1.0f);
    fd_fill(R, BN, 42, 1.0f);
    for (int n = 0; n < BN; n++) tg[n] = n % 7 == 3 ? -1 : (n * 13) % BV;
    LmBigCtx c = {y, W, logp, lse, R, scratch, tg};
    lmbig_f(&c);
    int bad = 0;
    for (int n = 0; n < BN; n++) {
        double lg[BV], mx = -1e300, z = 0;
        for (int v = 0; v < BV; v++) {
            lg[v] = 0;
            for (int i = 0; i < BD; i++) lg[v] += (double)y[n * BD + i] * W[v * BD + i];
            mx = lg[v] > mx ? lg[v] : mx;
        }
        for (int v = 0; v < BV; v++) z += exp(lg[v] - mx);
        double want = tg[n] >= 0 ? lg[tg[n]] - mx - log(z) : 0.0;
        bad += fabs(logp[n] - want) > 1e-5 * (1 + fabs(want));
    }
    CHECKF(bad == 0, "%d rows differ from the direct log-softmax", bad);
    ops()->lmhead_logprob_backward(dy, 0.0f, dW, R, lse, y, W, tg, BN, BV, BD, scratch);
    /* rows in the first, second and third block */
    for (int n = 500; n < BN; n += 300)
        CHECK(fd_check("dy", lmbig_f, &c, y + n * BD, dy + n * BD, BD, 1e-2, 2e-4, 1e-2, 10) == 0);
    CHECK(fd_check("dW", lmbig_f, &c, W, dW, BV * BD, 1e-2, 2e-3, 1e-2, 40) == 0);
    free(y); free(dy); free(logp); free(lse); free(R); free(scratch); free(tg);
}
