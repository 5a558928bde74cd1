/* tests/sft/test_pack.c — packing keeps examples whole and separate, targets follow masks. */
#include "tests/test.h"
#include "sft/pack.h"

#include <stdlib.h>

TEST(sft_pack_segments_and_targets) {
    int32_t a[4] = {1, 2, 3, 4}, b[3] = {5, 6, 7}, c[5] = {8, 9, 10, 11, 12}, d[1] = {13};
    uint8_t ma[4] = {0, 0, 1, 1}, mb[3] = {0, 1, 1}, mc[5] = {1, 1, 1, 1, 1}, md[1] = {1};
    SeqExample ex[4] = {{a, ma, 4}, {b, mb, 3}, {c, mc, 5}, {d, md, 1}};
    int order[4] = {0, 1, 3, 2};
    PackedBatch *pb;
    int nb = pack_batches(ex, order, 4, 8, &pb);
    CHECK(nb == 2);
    if (FAILED()) return;
    /* batch 0: a + b (7 tokens); d skipped (too short); c does not fit */
    CHECK(pb[0].batch.n_tokens == 7 && pb[0].batch.n_seqs == 2);
    CHECK(pb[0].cu_seqlens[0] == 0 && pb[0].cu_seqlens[1] == 4 && pb[0].cu_seqlens[2] == 7);
    int32_t want0[7] = {-1, 3, 4, -1, 6, 7, -1};
    for (int t = 0; t < 7; t++) CHECKF(pb[0].targets[t] == want0[t], "t=%d got %d", t, pb[0].targets[t]);
    CHECK(pb[0].n_targets == 4);
    CHECK(pb[1].batch.n_tokens == 5 && pb[1].n_targets == 4 && pb[1].targets[4] == -1);
    /* truncation to max_tokens */
    PackedBatch *pt;
    int nt = pack_batches(ex, (int[]){2}, 1, 3, &pt);
    CHECK(nt == 1 && pt[0].batch.n_tokens == 3 && pt[0].targets[2] == -1 && pt[0].targets[1] == 10);
    for (int i = 0; i < nb; i++) packed_batch_free(&pb[i]);
    for (int i = 0; i < nt; i++) packed_batch_free(&pt[i]);
    free(pb);
    free(pt);
}
