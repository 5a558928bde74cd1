/* model/cpu/rope.c — rotary embedding on interleaved pairs (2i, 2i+1) (spec §5.3), in
 * place on strided heads. The angle is fp32(pos) * inv_freq[i] rounded to fp32 before
 * cos/sin, as the reference does (spec §5.1). */
#include "model/cpu/cpu_ops.h"

#include <math.h>

static void rope(float *x, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                 const float *inv_freq, float cs_factor, float sign) {
#pragma omp parallel for schedule(static) if ((long)N * n_heads * dr > OPS_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        float p = (float)pos[n];
        for (int i = 0; i < dr / 2; i++) {
            float ang = p * inv_freq[i];
            float c = cosf(ang) * cs_factor, s = sign * sinf(ang) * cs_factor;
            for (int h = 0; h < n_heads; h++) {
                float *v = x + (size_t)n * ld + (size_t)h * head_stride + 2 * i;
                float a = v[0], b = v[1];
                v[0] = a * c - b * s;
                v[1] = a * s + b * c;
            }
        }
    }
}

void cpu_rope_forward(float *x, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                      const float *inv_freq, float cs_factor) {
    rope(x, ld, head_stride, n_heads, N, dr, pos, inv_freq, cs_factor, 1.0f);
}

/* The transpose of the forward map: rotation by -angle, scaled by the same factor. */
void cpu_rope_backward(float *dx, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                       const float *inv_freq, float cs_factor) {
    rope(dx, ld, head_stride, n_heads, N, dr, pos, inv_freq, cs_factor, -1.0f);
}
