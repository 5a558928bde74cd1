/* model/hd.h — CR_HD: marks a static inline helper as callable from host and device code.
 * Under nvcc (__CUDACC__) it expands to __host__ __device__; in C17 host builds to nothing,
 * so one definition in a header serves model/cpu/ and model/cuda/ alike. */
#ifndef CRUCIBLE_MODEL_HD_H
#define CRUCIBLE_MODEL_HD_H

#ifdef __CUDACC__
#define CR_HD __host__ __device__
#else
#define CR_HD
#endif

#endif
