#!/bin/sh
# tests/cuda/build_device.sh — links self-contained CUDA test and bench binaries for a
# GPU machine that has the CUDA driver and cuBLAS but none of the project's other
# build dependencies (no OpenBLAS, cJSON, ... there). Run after `make` and `make bench`
# on a machine with nvcc; it writes build/cuda_dev/{crucible_cuda_tests,cuda_ops_bench,
# cuda_train_step,cuda_decode} and the libcjson.so.1 they load from their own folder.
# LIB (default build/libcrucible.a) names the CUDA-enabled library to link.
# OpenBLAS, PCRE2, libgomp, libstdc++ and cudart are linked statically; cuBLAS/cuBLASLt
# dynamically (rpath /usr/local/cuda/lib64; LD_LIBRARY_PATH may add another).
set -eu
B=build/cuda_dev
LIB=${LIB:-build/libcrucible.a}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
mkdir -p $B/gen $B/obj
# The GPU tests: tests/cuda/*.c, the transformers-fixture parity tests (whose cuda_parity_*
# run the committed fixtures on the GPU), the guarded test backend they share, and the
# rollout tests' two-engine forward harness and generate helper.
SRCS="tests/cuda/*.c tests/model/test_parity.c tests/guarded_ops.c tests/rollout/forward_twin.c tests/rollout/generate.c"
cat /dev/null $SRCS | sed -n 's/^TEST(\([A-Za-z0-9_]*\)).*/X(\1)/p' > $B/gen/test_list.h
CF="-std=c17 -O2 -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE -DCRUCIBLE_CUDA -I. -I$CUDA_HOME/include"
gcc $CF -I$B/gen -c tests/main.c -o $B/obj/main.o
OBJS=$B/obj/main.o
for f in $SRCS; do
    o=$B/obj/$(basename $f .c).o
    gcc $CF -c $f -o $o
    OBJS="$OBJS $o"
done
GOMP=$(gcc -print-file-name=libgomp.a)
OPENBLAS=${OPENBLAS_A:-/usr/lib/x86_64-linux-gnu/libopenblas.a}
# PCRE2 (the tokenizer's pre-tokenizer, pulled in by the rollout engine): static.
PCRE2=${PCRE2_A:-/usr/lib/x86_64-linux-gnu/libpcre2-8.a}
# cJSON has no static library on Debian: its shared object travels beside the binaries.
cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 $B/
LIBS="$LIB $PCRE2 $OPENBLAS $GOMP $B/libcjson.so.1 -Wl,-rpath,\$ORIGIN -L$CUDA_HOME/lib64 -Wl,-rpath,$CUDA_HOME/lib64 -lcudart_static -lcublas -lcublasLt -static-libgcc -static-libstdc++ -lstdc++ -lm -lpthread -ldl -lrt"
g++ -o $B/crucible_cuda_tests $OBJS $LIBS
strip $B/crucible_cuda_tests
for n in cuda_ops_bench cuda_train_step cuda_decode; do
    gcc $CF -c bench/$n.c -o $B/obj/$n.o
    g++ -o $B/$n $B/obj/$n.o $LIBS
    strip $B/$n
done
# The CLI, for the end-to-end demo step of cuda_check.sh: the libraries with a static
# archive are linked in; libgit2's GSSAPI dependency has none, so its shared objects travel
# in $B/lib (RPATH, not RUNPATH, so that they are found for the libraries that load them).
L=/usr/lib/x86_64-linux-gnu
mkdir -p $B/lib
for so in libgssapi_krb5.so.2 libkrb5.so.3 libk5crypto.so.3 libcom_err.so.2 libkrb5support.so.0 libkeyutils.so.1; do
    cp -L $L/$so $B/lib/ 2>/dev/null || cp -L /lib/x86_64-linux-gnu/$so $B/lib/
done
g++ -fopenmp -o $B/crucible build/obj/cli/*.o $LIB $L/libpcre2-8.a $L/libsqlite3.a $L/libseccomp.a $L/libgit2.a \
    $L/libmbedtls.a $L/libmbedx509.a $L/libmbedcrypto.a $L/libhttp_parser.a $L/libssh2.a $L/libssl.a $L/libcrypto.a \
    $L/libz.a $OPENBLAS $GOMP $B/libcjson.so.1 $B/lib/libgssapi_krb5.so.2 -Wl,--disable-new-dtags \
    -Wl,-rpath,\$ORIGIN:\$ORIGIN/lib -L$CUDA_HOME/lib64 -Wl,-rpath,$CUDA_HOME/lib64 -lcudart_static -lcublas -lcublasLt \
    -static-libgcc -static-libstdc++ -lm -lpthread -ldl -lrt 2>&1 | grep -v "warning: Using\|statically linked" || true
strip $B/crucible
echo "build_device: $B/crucible_cuda_tests $B/cuda_ops_bench $B/cuda_train_step $B/cuda_decode $B/crucible"
