/* model/device.c — see device.h */
#include "model/device.h"

#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#ifdef CRUCIBLE_CUDA
#include "model/cuda/ops_cuda.h"
#endif

int device_parse(const char *value, DeviceKind *kind, CrError *e) {
    if (!value || !strcmp(value, "cpu")) *kind = DEVICE_CPU;
    else if (!strcmp(value, "auto")) *kind = DEVICE_AUTO;
    else if (!strcmp(value, "cuda")) *kind = DEVICE_CUDA;
    else if (!strcmp(value, "cuda-fp32")) *kind = DEVICE_CUDA_FP32;
    else return cr_error_set(e, "--device: unknown value \"%s\" (expected auto, cpu, cuda or cuda-fp32)", value);
    return 0;
}

const Ops *device_ops(DeviceKind kind, CrError *e) {
    if (kind == DEVICE_CPU) return ops_cpu();
    const char *name = kind == DEVICE_CUDA_FP32 ? "cuda-fp32" : "cuda";
#ifdef CRUCIBLE_CUDA
    if (crucible_cuda_device_count() <= 0) {
        if (kind == DEVICE_AUTO) return ops_cpu();
        return cr_error_set(e, "--device %s: no CUDA device is visible to this process (no GPU or no driver); "
                               "use --device cpu", name), NULL;
    }
    const Ops *ops = kind == DEVICE_CUDA_FP32 ? ops_cuda() : ops_cuda_bf16();
    if (!ops) {
        if (kind == DEVICE_AUTO) return ops_cpu();
        return cr_error_set(e, "--device %s: the CUDA device is not usable; use --device cpu", name), NULL;
    }
    return ops;
#else
    if (kind == DEVICE_AUTO) return ops_cpu();
    return cr_error_set(e, "--device %s: this build has no CUDA support (built without nvcc or with NO_CUDA=1); "
                           "use --device cpu", name), NULL;
#endif
}

const Ops *device_open(const char *value, CrError *e) {
    DeviceKind k = DEVICE_CPU;
    if (device_parse(value, &k, e)) return NULL;
    return device_ops(k, e);
}

int device_check_rollout(const Ops *ops, CrError *e) {
    if (!strcmp(ops->name, "cpu") ||
        (ops->mla_cache_scatter && ops->mla_decode_attention && ops->gemm_batched && ops->copy2d))
        return 0;
    return cr_error_set(e, "--device: generation (the rollout engine) does not run on the %s backend in this build "
                           "(no GPU decode ops yet); use --device cpu", ops->name);
}

const Ops *device_ops_for_rollout(DeviceKind kind, const Ops *given, CrError *e) {
    const Ops *ops = given ? given : device_ops(kind, e);
    return ops && !device_check_rollout(ops, e) ? ops : NULL;
}

const char *device_default(void) {
    const char *v = getenv("CRUCIBLE_DEVICE");
    return v && *v ? v : "auto";
}
