/* model/cpu/mla.c — MLA key/value assembly (spec §4.2 step 4) and its backward, where the
 * single rotary key shared by all heads collects the sum of the heads' gradients (§7.5). */
#include "model/cpu/cpu_ops.h"

#include <string.h>

void cpu_mla_kv_assemble_forward(float *K, float *V, const float *kv, const float *kpe, int ldkpe, int N,
                                 int H, int dn, int dr, int dv) {
    int dqk = dn + dr, dkv = dn + dv;
#pragma omp parallel for schedule(static) if ((long)N * H * (dn + dr + dv) > OPS_CPU_PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            const float *src = kv + ((size_t)n * H + h) * dkv;
            float *k = K + ((size_t)n * H + h) * dqk;
            memcpy(k, src, sizeof(float) * dn);
            memcpy(k + dn, kpe + (size_t)n * ldkpe, sizeof(float) * dr);
            memcpy(V + ((size_t)n * H + h) * dv, src + dn, sizeof(float) * dv);
        }
}

void cpu_mla_kv_assemble_backward(float *dkv, float *dkpe, int ldkpe, const float *dK, const float *dV,
                                  int N, int H, int dn, int dr, int dv) {
    int dqk = dn + dr, dkv_w = dn + dv;
#pragma omp parallel for schedule(static) if ((long)N * H * (dn + dr + dv) > OPS_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *kp = dkpe + (size_t)n * ldkpe;
        for (int i = 0; i < dr; i++) kp[i] = 0;
        for (int h = 0; h < H; h++) {
            const float *k = dK + ((size_t)n * H + h) * dqk;
            float *dst = dkv + ((size_t)n * H + h) * dkv_w;
            memcpy(dst, k, sizeof(float) * dn);
            memcpy(dst + dn, dV + ((size_t)n * H + h) * dv, sizeof(float) * dv);
            for (int i = 0; i < dr; i++) kp[i] += k[dn + i];
        }
    }
}
