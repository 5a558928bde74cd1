// model/cuda/graph.cu — recorded steps (Ops.step_*): a decode step's ~680 launches recorded
// once as a CUDA graph and replayed with one launch, so the GPU no longer waits on the
// host between small kernels (on the H100 about 40 % of a batch-1 step's time went to such
// gaps, bench/RESULTS.md). Opt-in: CRUCIBLE_CUDA_GRAPHS=1 (read per call); NOT yet run on
// a GPU (written after the lease; it compiles, its GPU test SKIPs here).
//
// Recording: every op of the backend issues its work to cuda_stream(), which is the legacy
// default stream except between step_record_begin and step_record_end, when it is a
// (blocking) stream being captured, cuBLAS set to it as well. Capture mode "relaxed": an
// allocation during the recording (none is expected: forward_ops records a shape only
// after one direct call of it) is made at once, its zero-fill and any free deferred to the
// end of the recording (cuda_defer: neither may run inside a capture), and it bumps the
// context's epoch, so the recording is dropped. A replay (cudaGraphLaunch into the legacy
// stream: ordered after and before the backend's other work) is refused once the epoch
// moved on — any cudaMalloc / cudaFree / scratch growth since the recording — or when one
// of the environment switches that pick the decode kernels changed (their values are part
// of the step).
// Not recorded (never asked to be, rollout/forward_ops.c): anything that synchronises with
// the host. The bf16 parameter copies of the large GEMMs (CRUCIBLE_CUDA_BF16_WEIGHTS)
// allocate and refresh inside GEMMs: with them on, recording is off. The decode kernels'
// copies (CRUCIBLE_CUDA_DECODE_BF16) are read by a recording only when already fresh
// (param_shadow.cu), and a write that makes one stale moves the epoch.
#include "model/cuda/cuda_ops.cuh"

#include "model/cuda/param_shadow.cuh"

typedef struct CudaStep {
    cudaGraphExec_t exec;
    unsigned long epoch, switches;
} CudaStep;

// A hash of the environment switches read per call by the ops a decode step records (a
// replay runs the kernels they chose at recording time).
static unsigned long switches_hash(void) {
    static const char *const names[6] = {"CRUCIBLE_CUDA_GEMV",      "CRUCIBLE_CUDA_MOE_SMALL",
                                         "CRUCIBLE_CUDA_ROUTE",     "CRUCIBLE_CUDA_MLA_SPLIT",
                                         "CRUCIBLE_MOE_SMALL_SLOTS", "CRUCIBLE_CUDA_DECODE_BF16"};
    unsigned long h = 1469598103934665603ul;
    for (int i = 0; i < 6; i++) {
        const char *v = getenv(names[i]);
        for (const char *q = v ? v : "\x01"; *q; q++) h = (h ^ (unsigned char)*q) * 1099511628211ul;
        h = (h ^ 0xff) * 1099511628211ul;
    }
    return h;
}

int cuda_step_enabled(void) {
    static const char *const v[2] = {"0", "1"};
    return cuda_env_pick("CRUCIBLE_CUDA_GRAPHS", v, 2) && !cuda_bf16_weights_enabled();
}

int cuda_step_record_begin(void) {
    CudaCtx *c = cuda_ctx();
    if (!cuda_step_enabled() || c->stream) return -1;  // off, or already recording
    if (!c->rec) cudaCheck(cudaStreamCreate(&c->rec));
    // cuBLAS moved to the recording stream before the capture begins (no library calls
    // inside it but the GEMMs); its workspace, reset by cublasSetStream, is set again: the
    // same buffer, used in stream order (the replay runs on the legacy stream)
    cublasCheck(cublasSetStream(c->blas, c->rec));
    cuda_blas_workspace(c->blas, &c->blas_ws);
    cudaCheck(cudaStreamBeginCapture(c->rec, cudaStreamCaptureModeRelaxed));
    c->stream = c->rec;
    c->rec_epoch = c->epoch;
    return 0;
}

void *cuda_step_record_end(void) {
    CudaCtx *c = cuda_ctx();
    if (!c->rec || c->stream != c->rec) return NULL;
    cudaGraph_t graph = NULL;
    cudaError_t err = cudaStreamEndCapture(c->rec, &graph);
    c->stream = 0;
    cublasCheck(cublasSetStream(c->blas, 0));
    cuda_blas_workspace(c->blas, &c->blas_ws);
    for (int i = 0; i < c->n_rec_defer; i++) {  // the zero-fills and frees asked for meanwhile
        if (c->rec_defer[i].is_free) cudaCheck(cudaFree(c->rec_defer[i].p));
        else cudaCheck(cudaMemset(c->rec_defer[i].p, 0, c->rec_defer[i].bytes));
    }
    c->n_rec_defer = 0;
    if (err != cudaSuccess || !graph || c->epoch != c->rec_epoch) {
        (void)cudaGetLastError();  // an invalidated capture leaves its error behind
        if (graph) cudaCheck(cudaGraphDestroy(graph));
        return NULL;
    }
    cudaGraphExec_t exec = NULL;
    err = cudaGraphInstantiate(&exec, graph, 0);
    cudaCheck(cudaGraphDestroy(graph));
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    CudaStep *s = (CudaStep *)malloc(sizeof *s);
    if (!s) cuda_fail("cuda_step_record_end", "out of memory", __FILE__, __LINE__);
    s->exec = exec;
    s->epoch = c->epoch;
    s->switches = switches_hash();
    return s;
}

int cuda_step_launch(void *step) {
    CudaStep *s = (CudaStep *)step;
    CudaCtx *c = cuda_ctx();
    if (!s || s->epoch != c->epoch || c->stream || s->switches != switches_hash()) return -1;
    cudaCheck(cudaGraphLaunch(s->exec, 0));
    return 0;
}

void cuda_step_free(void *step) {
    CudaStep *s = (CudaStep *)step;
    if (!s) return;
    cudaCheck(cudaGraphExecDestroy(s->exec));
    free(s);
}
