/*
** test_sparse.c -- the host side of the 16:32 structured-sparse int4 format
** (runtime/q4_sparse.c): hand-worked packing and dequantization, pack/unpack
** round trips, the mask validator, rejection of bad input (with nothing
** written), the reference dot product and NULL arguments.
** The layout, from ../shared/FORMATS.md:
**   mask    uint32 [K/32][N]: bit j of word (b, n) set when row 32b+j is kept
**   qweight uint32 [K/16][N]: kept code number i of block b, column n in
**           word (2b + i/8, n), bits 4*(i%8) .. 4*(i%8)+3
**   pruned weights are exactly 0, kept ones (q - z) * s.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_ref.h"
#include "q4_sparse.h"
#include "q4test.h"

/* ---- a worked example: K = 64, N = 2 ---------------------------------------
**
** Column 0 (codes[0][k]):
**   rows 0..15 code k, rows 16..31 code 5, rows 32..63 code 15 - (k % 16).
**   keep: rows 0..15 and rows 48..63.
**   block 0: mask 0x0000ffff; kept codes 0,1,...,15 in order
**            -> word (0,0) = 0x76543210 (code 0 in the low nibble)
**               word (1,0) = 0xfedcba98
**   block 1: mask 0xffff0000; kept rows 48..63 have codes 15,14,...,0
**            -> word (2,0) nibbles (low to high) f,e,d,c,b,a,9,8 = 0x89abcdef
**               word (3,0) nibbles 7,6,5,4,3,2,1,0               = 0x01234567
**
** Column 1:
**   block 0: kept rows 0,2,3,5,8,9,12,13 | 16,18,20,23,24,27,30,31
**            mask low half: bits 0,2,3,5 = 0x2d, 8,9 = 0x300, 12,13 = 0x3000 -> 0x332d
**            high half: bits 0,2,4,7 = 0x95, 8,11 = 0x900, 14,15 = 0xc000   -> 0xc995
**            -> mask 0xc995332d
**            codes (k = 0..31) 3 9 14 1 7 0 11 5 15 2 8 13 6 10 4 12
**                              1 5 9 14 2 11 7 0 13 3 6 8 15 10 4 12
**            kept codes: 3,14,1,0,15,2,6,10 -> word (0,1) = 0xa62f01e3
**                        1,9,2,0,13,8,4,12  -> word (1,1) = 0xc48d0291
**   block 1: keep the even rows 32,34,...,62: mask 0x55555555
**            codes (k = 32..63) 5 12 3 10 1 8 15 6 13 4 11 2 9 0 7 14
**                               6 13 4 11 2 9 0 7 14 5 12 3 10 1 8 15
**            kept codes: 5,3,1,15,13,11,9,7 -> word (2,1) = 0x79bdf135
**                        6,4,2,0,14,12,10,8 -> word (3,1) = 0x8ace0246
**
** mask [2][2] = {0x0000ffff, 0xc995332d, 0xffff0000, 0x55555555};
** qweight [4][2] = {0x76543210, 0xa62f01e3, 0xfedcba98, 0xc48d0291,
**                   0x89abcdef, 0x79bdf135, 0x01234567, 0x8ace0246}.
** The K = 32 example is block 0 of both columns.
*/
static const uint8_t ex_codes1[64] = {
    3, 9, 14, 1, 7, 0, 11, 5, 15, 2, 8, 13, 6, 10, 4, 12,
    1, 5, 9, 14, 2, 11, 7, 0, 13, 3, 6, 8, 15, 10, 4, 12,
    5, 12, 3, 10, 1, 8, 15, 6, 13, 4, 11, 2, 9, 0, 7, 14,
    6, 13, 4, 11, 2, 9, 0, 7, 14, 5, 12, 3, 10, 1, 8, 15};
static const int ex_kept1_b0[16] = {0, 2, 3, 5, 8, 9, 12, 13, 16, 18, 20, 23, 24, 27, 30, 31};

/* Fill codes and keep (N = 2 x K, K = 32 or 64) with the example above. */
static void example(int k, uint8_t *codes, uint8_t *keep) {
  memset(keep, 0, 2 * (size_t)k);
  for (int r = 0; r < k; r++) {
    codes[r] = (uint8_t)(r < 16 ? r : r < 32 ? 5 : 15 - r % 16);
    keep[r] = (uint8_t)(r < 16 || r >= 48);
    codes[k + r] = ex_codes1[r];
    if (r >= 32) keep[k + r] = (uint8_t)(r % 2 == 0);
  }
  for (int i = 0; i < 16; i++) keep[k + ex_kept1_b0[i]] = 1;
}

static void test_hand_pack(void) {
  static const uint32_t want_mask[4] = {0x0000ffffu, 0xc995332du, 0xffff0000u, 0x55555555u};
  static const uint32_t want_qw[8] = {0x76543210u, 0xa62f01e3u, 0xfedcba98u, 0xc48d0291u,
                                      0x89abcdefu, 0x79bdf135u, 0x01234567u, 0x8ace0246u};
  for (int k = 32; k <= 64; k += 32) {
    uint8_t codes[128], keep[128], c2[128], k2[128];
    uint32_t qw[8], mask[4];
    example(k, codes, keep);
    CHECK_OK(q4s_pack(codes, keep, 2, k, qw, mask));
    /* the k/32 * 2 mask words and k/16 * 2 qweight words, in [K/32][N] and [K/16][N] order */
    for (int i = 0; i < k / 16; i++)
      CHECK_MSG(mask[i] == want_mask[i], "K=%d mask[%d] = 0x%08x, want 0x%08x", k, i, mask[i], want_mask[i]);
    for (int i = 0; i < k / 8; i++)
      CHECK_MSG(qw[i] == want_qw[i], "K=%d qweight[%d] = 0x%08x, want 0x%08x", k, i, qw[i], want_qw[i]);

    CHECK_OK(q4s_unpack(qw, mask, 2, k, c2, k2));
    int bad = 0;
    for (int e = 0; e < 2 * k; e++) bad += k2[e] != keep[e] || c2[e] != (keep[e] ? codes[e] : 0);
    CHECK_MSG(bad == 0, "K=%d: %d elements differ after unpack", k, bad);
  }
  /* spot checks of unpack, by hand: column 0 row 20 pruned (code 5 dropped),
  ** column 1 row 1 pruned (code 9 dropped), column 1 row 31 kept code 12 */
  uint8_t codes[128], keep[128], c2[128], k2[128];
  uint32_t qw[8], mask[4];
  example(64, codes, keep);
  CHECK_OK(q4s_pack(codes, keep, 2, 64, qw, mask));
  CHECK_OK(q4s_unpack(qw, mask, 2, 64, c2, k2));
  CHECK(c2[20] == 0 && k2[20] == 0);
  CHECK(c2[64 + 1] == 0 && k2[64 + 1] == 0);
  CHECK(c2[64 + 31] == 12 && k2[64 + 31] == 1);
  CHECK(c2[63] == 0 && k2[63] == 1);  /* kept, and its code is 0 */
}

/* Scales and zeros of the worked example, group size 32 (exact in fp16):
**   group 0: column 0 s = 0.5, z = 8;    column 1 s = 0.25, z = 7.5
**   group 1: column 0 s = 0.125, z = 3;  column 1 s = 2, z = 1.5 */
static void test_hand_weights(void) {
  uint8_t codes[128], keep[128];
  uint32_t qw[8], mask[4];
  uint16_t scales[4] = {0x3800, 0x3400, 0x3000, 0x4000};  /* 0.5 0.25 0.125 2 */
  uint16_t zeros[4] = {0x4800, 0x4780, 0x4200, 0x3e00};   /* 8 7.5 3 1.5 */
  example(64, codes, keep);
  CHECK_OK(q4s_pack(codes, keep, 2, 64, qw, mask));
  q4s_host_weights w = {{Q4_FORMAT_Q4S, 2, 64, 32, 0}, qw, mask, scales, zeros};
  static const struct { int k, n; double want; } cases[] = {
      {3, 0, -2.5},     /* code 3: (3 - 8) * 0.5 */
      {0, 0, -4.0},     /* code 0: (0 - 8) * 0.5 */
      {20, 0, 0.0},     /* pruned; (5 - 8) * 0.5 would be -1.5 */
      {32, 0, 0.0},     /* pruned; (15 - 3) * 0.125 would be 1.5 */
      {48, 0, 1.5},     /* code 15: (15 - 3) * 0.125 */
      {63, 0, -0.375},  /* code 0: (0 - 3) * 0.125 */
      {1, 1, 0.0},      /* pruned; code 9 is stored in the dense matrix */
      {8, 1, 1.875},    /* code 15: (15 - 7.5) * 0.25 */
      {31, 1, 1.125},   /* code 12: (12 - 7.5) * 0.25 */
      {32, 1, 7.0},     /* code 5: (5 - 1.5) * 2 */
      {33, 1, 0.0},     /* pruned */
      {62, 1, 13.0},    /* code 8: (8 - 1.5) * 2 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const double got = q4s_ref_weight(&w, cases[i].k, cases[i].n);
    CHECK_MSG(got == cases[i].want, "q4s_ref_weight(k=%d, n=%d) = %.17g, want %.17g", cases[i].k, cases[i].n, got,
              cases[i].want);
  }
  /* x = 1 everywhere:
  **   column 0: 0.5 * (sum 0..15 - 16 * 8) + 0.125 * (sum 0..15 - 16 * 3) = -4 + 9 = 5
  **   column 1: block 0 kept codes sum to 51 + 49 = 100: 0.25 * (100 - 120) = -5
  **             block 1 kept codes are 0..15:        2 * (120 - 24) = 192  -> 187 */
  uint16_t x[64];
  for (int k = 0; k < 64; k++) x[k] = 0x3c00;
  CHECK(q4s_ref_dot(&w, x, 0) == 5.0);
  CHECK(q4s_ref_dot(&w, x, 1) == 187.0);
  /* an Inf in x at a row pruned in column 1 (row 1) leaves column 1 finite */
  x[1] = 0x7c00;
  CHECK(q4s_ref_dot(&w, x, 1) == 187.0);
  CHECK(isinf(q4s_ref_dot(&w, x, 0)));  /* row 1 is kept in column 0 */
}

/* ---- random data -------------------------------------------------------------- */

static void test_round_trip(void) {
  static const struct { int k, n, seeds; } shapes[] = {
      {32, 1, 64}, {32, 2, 64}, {64, 3, 64}, {96, 5, 32}, {128, 8, 32}, {1024, 16, 8}, {4096, 64, 3}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int k = shapes[s].k, n = shapes[s].n;
    const size_t el = (size_t)n * k;
    uint8_t *codes = malloc(el), *keep = malloc(el), *c2 = malloc(el), *k2 = malloc(el);
    uint32_t *qw = malloc(el / 16 * 4), *mask = malloc(el / 32 * 4), *qw2 = malloc(el / 16 * 4),
             *mask2 = malloc(el / 32 * 4);
    if (!codes || !keep || !c2 || !k2 || !qw || !mask || !qw2 || !mask2) {
      CHECK_MSG(0, "out of memory");
      return;
    }
    for (int seed = 1; seed <= shapes[s].seeds; seed++) {
      q4s_random_dense(codes, keep, n, k, (uint64_t)seed * 7919 + (uint64_t)k * n);
      q4_status st = q4s_pack(codes, keep, n, k, qw, mask);
      CHECK_MSG(st == Q4_OK, "K=%d N=%d seed %d: pack: %s", k, n, seed, q4_last_error());
      st = q4s_unpack(qw, mask, n, k, c2, k2);
      CHECK_MSG(st == Q4_OK, "K=%d N=%d seed %d: unpack: %s", k, n, seed, q4_last_error());
      size_t bad = 0;
      for (size_t e = 0; e < el; e++) bad += k2[e] != keep[e] || c2[e] != (keep[e] ? codes[e] : 0);
      CHECK_MSG(bad == 0, "K=%d N=%d seed %d: %zu elements differ after pack -> unpack", k, n, seed, bad);
      /* and back: packing the unpacked matrix gives the same words */
      CHECK_OK(q4s_pack(c2, k2, n, k, qw2, mask2));
      CHECK_MSG(!memcmp(qw, qw2, el / 16 * 4) && !memcmp(mask, mask2, el / 32 * 4),
                "K=%d N=%d seed %d: unpack -> pack changed the words", k, n, seed);
    }
    free(codes), free(keep), free(c2), free(k2), free(qw), free(mask), free(qw2), free(mask2);
  }
}

/* ---- the validator ------------------------------------------------------------ */

static void test_validate(void) {
  enum { K = 256, N = 8 };  /* 8 row blocks */
  uint32_t mask[K / 32 * N];
  uint64_t st = 42;
  for (int i = 0; i < K / 32 * N; i++) mask[i] = q4s_random_pattern(&st);
  CHECK_OK(q4s_validate(mask, N, K));

  /* word (3, 5) with 15 and with 17 bits set */
  const uint32_t good = mask[3 * N + 5];
  const uint32_t low = good & (0u - good);     /* its lowest set bit */
  const uint32_t clear = ~good & (0u - ~good);  /* its lowest clear bit */
  mask[3 * N + 5] = good & ~low;
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "row block 3");
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "column 5");
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "15 bits set");
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "rows 96..127");
  mask[3 * N + 5] = good | clear;
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "row block 3");
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "column 5");
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "17 bits set");

  /* the first bad word in (row block, column) order is the one named */
  mask[6 * N + 1] = 0;
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "row block 3 (rows 96..127), column 5");
  mask[3 * N + 2] = 0xffffffffu;
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "row block 3 (rows 96..127), column 2 is 0xffffffff with 32 bits");
  mask[3 * N + 2] = mask[3 * N + 5] = good;
  CHECK_ERR(q4s_validate(mask, N, K), Q4_ERR_INVALID_ARG, "row block 6 (rows 192..223), column 1 is 0x00000000 with 0 bits");
  mask[6 * N + 1] = good;
  CHECK_OK(q4s_validate(mask, N, K));

  /* extremes, and many random 16-bit patterns, are accepted */
  static const uint32_t ext[4] = {0x0000ffffu, 0xffff0000u, 0x55555555u, 0xaaaaaaaau};
  for (int i = 0; i < K / 32 * N; i++) mask[i] = ext[i % 4];
  CHECK_OK(q4s_validate(mask, N, K));
  int rejected = 0;
  for (int r = 0; r < 200; r++) {
    for (int i = 0; i < K / 32 * N; i++) mask[i] = q4s_random_pattern(&st);
    rejected += q4s_validate(mask, N, K) != Q4_OK;
  }
  CHECK_MSG(rejected == 0, "%d of 200 random valid masks rejected", rejected);
  /* a few near misses around the extremes */
  static const uint32_t off[6] = {0x0000fffeu, 0x0001ffffu, 0x7fff0000u, 0xffff8000u, 0u, 0xffffffffu};
  for (int i = 0; i < 6; i++) {
    uint32_t one[1] = {off[i]};
    CHECK_ERR(q4s_validate(one, 1, 32), Q4_ERR_INVALID_ARG, "row block 0 (rows 0..31), column 0");
  }
  /* sizes */
  CHECK_ERR(q4s_validate(mask, N, 48), Q4_ERR_INVALID_ARG, "multiple of 32");
  CHECK_ERR(q4s_validate(mask, N, 0), Q4_ERR_INVALID_ARG, "multiple of 32");
  CHECK_ERR(q4s_validate(mask, 0, K), Q4_ERR_INVALID_ARG, "N = 0");
  CHECK_ERR(q4s_validate(mask, -3, K), Q4_ERR_INVALID_ARG, "N = -3");
}

/* ---- bad input to pack and unpack: rejected, nothing written ---------------- */

#define SENTINEL 0xdeadbeefu

static int untouched(const uint32_t *a, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (a[i] != SENTINEL) return 0;
  return 1;
}

static void test_pack_errors(void) {
  enum { K = 128, N = 4 };  /* 4 row blocks */
  static uint8_t codes[N * K], keep[N * K];
  uint32_t qw[K / 16 * N + 4], mask[K / 32 * N + 4];  /* + room for K = 160 below */
#define RESET() do { \
    q4s_random_dense(codes, keep, N, K, 99); \
    for (size_t i_ = 0; i_ < sizeof qw / 4; i_++) qw[i_] = SENTINEL; \
    for (size_t i_ = 0; i_ < sizeof mask / 4; i_++) mask[i_] = SENTINEL; \
  } while (0)
#define NOTHING_WRITTEN() CHECK_MSG(untouched(qw, sizeof qw / 4) && untouched(mask, sizeof mask / 4), \
                                    "outputs written on error")

  /* 15 kept in block 1 of column 2: drop one kept row */
  RESET();
  for (int j = 0; j < 32; j++)
    if (keep[2 * K + 32 + j]) { keep[2 * K + 32 + j] = 0; break; }
  CHECK_ERR(q4s_pack(codes, keep, N, K, qw, mask), Q4_ERR_INVALID_ARG,
            "keep-mask breaks the 16-of-32 rule at row block 1 (rows 32..63), column 2: 15 rows kept");
  NOTHING_WRITTEN();
  /* 17 kept */
  RESET();
  for (int j = 0; j < 32; j++)
    if (!keep[2 * K + 32 + j]) { keep[2 * K + 32 + j] = 1; break; }
  CHECK_ERR(q4s_pack(codes, keep, N, K, qw, mask), Q4_ERR_INVALID_ARG,
            "at row block 1 (rows 32..63), column 2: 17 rows kept");
  NOTHING_WRITTEN();
  /* two bad blocks: (b 2, n 0) and (b 1, n 3); the first in (b, n) order is (1, 3) */
  RESET();
  memset(keep + 0 * K + 64, 1, 32);
  memset(keep + 3 * K + 32, 0, 32);
  CHECK_ERR(q4s_pack(codes, keep, N, K, qw, mask), Q4_ERR_INVALID_ARG,
            "at row block 1 (rows 32..63), column 3: 0 rows kept");
  NOTHING_WRITTEN();
  memset(keep + 3 * K + 32, 1, 16);
  CHECK_ERR(q4s_pack(codes, keep, N, K, qw, mask), Q4_ERR_INVALID_ARG,
            "at row block 2 (rows 64..95), column 0: 32 rows kept");
  NOTHING_WRITTEN();

  /* a code above 15, also at a pruned position */
  RESET();
  codes[1 * K + 7] = 16;
  CHECK_ERR(q4s_pack(codes, keep, N, K, qw, mask), Q4_ERR_INVALID_ARG, "code at (n=1, k=7) is 16");
  NOTHING_WRITTEN();
  codes[0 * K + 100] = 255;  /* earlier in (n, k) order */
  CHECK_ERR(q4s_pack(codes, keep, N, K, qw, mask), Q4_ERR_INVALID_ARG, "code at (n=0, k=100) is 255");
  NOTHING_WRITTEN();
  /* keep values other than 0/1 (2 with 15 ones beside it would pass a
  ** block sum of 17 - 1 + 2 = 16 if keep were summed unchecked) */
  RESET();
  for (int j = 0; j < 32; j++)
    if (keep[3 * K + 96 + j]) { keep[3 * K + 96 + j] = 0; break; }
  for (int j = 0; j < 32; j++)
    if (keep[3 * K + 96 + j]) { keep[3 * K + 96 + j] = 2; break; }
  {
    int pos = -1;
    for (int j = 0; j < 32; j++)
      if (keep[3 * K + 96 + j] == 2) pos = 96 + j;
    char want[64];
    snprintf(want, sizeof want, "keep-mask value at (n=3, k=%d) is 2", pos);
    CHECK_ERR(q4s_pack(codes, keep, N, K, qw, mask), Q4_ERR_INVALID_ARG, want);
    NOTHING_WRITTEN();
  }
  RESET();
  keep[5] = 0xff;
  CHECK_ERR(q4s_pack(codes, keep, N, K, qw, mask), Q4_ERR_INVALID_ARG, "keep-mask value at (n=0, k=5) is 255");
  NOTHING_WRITTEN();

  /* sizes */
  RESET();
  CHECK_ERR(q4s_pack(codes, keep, N, 48, qw, mask), Q4_ERR_INVALID_ARG, "K = 48 is not a positive multiple of 32");
  CHECK_ERR(q4s_pack(codes, keep, 1, 100, qw, mask), Q4_ERR_INVALID_ARG, "K = 100");
  CHECK_ERR(q4s_pack(codes, keep, N, 0, qw, mask), Q4_ERR_INVALID_ARG, "K = 0");
  CHECK_ERR(q4s_pack(codes, keep, N, -32, qw, mask), Q4_ERR_INVALID_ARG, "K = -32");
  CHECK_ERR(q4s_pack(codes, keep, 0, K, qw, mask), Q4_ERR_INVALID_ARG, "N = 0");
  CHECK_ERR(q4s_pack(codes, keep, -1, K, qw, mask), Q4_ERR_INVALID_ARG, "N = -1");
  NOTHING_WRITTEN();

  /* unpack of a bad mask writes nothing either */
  RESET();
  CHECK_OK(q4s_pack(codes, keep, N, K, qw, mask));
  mask[2 * N + 1] |= ~mask[2 * N + 1] & (0u - ~mask[2 * N + 1]);  /* set its lowest clear bit: 17 */
  uint8_t c2[N * K], k2[N * K];
  memset(c2, 0xab, sizeof c2);
  memset(k2, 0xab, sizeof k2);
  CHECK_ERR(q4s_unpack(qw, mask, N, K, c2, k2), Q4_ERR_INVALID_ARG, "row block 2 (rows 64..95), column 1");
  int written = 0;
  for (int e = 0; e < N * K; e++) written += c2[e] != 0xab || k2[e] != 0xab;
  CHECK_MSG(written == 0, "unpack wrote %d elements on error", written);
  CHECK_ERR(q4s_unpack(qw, mask, N, 40, c2, k2), Q4_ERR_INVALID_ARG, "K = 40");
#undef RESET
#undef NOTHING_WRITTEN
}

/* ---- the reference ------------------------------------------------------------ */

static void test_ref_random(void) {
  q4_shape s = {Q4_FORMAT_Q4, 64, 4096, 128, 0};  /* format is set to q4s by ref_random */
  q4s_host_weights w, w2;
  CHECK_OK(q4s_ref_random(&w, &s, 7));
  CHECK(w.shape.format == Q4_FORMAT_Q4S && w.shape.n == 64 && w.shape.k == 4096 && w.shape.group_size == 128);
  CHECK_OK(q4s_validate(w.mask, 64, 4096));
  /* not one fixed pattern: 8192 blocks from C(32,16) = 601080390 patterns */
  const size_t nblk = 4096 / 32 * 64;
  size_t same_as_first = 0, same_as_left = 0;
  for (size_t i = 1; i < nblk; i++) {
    same_as_first += w.mask[i] == w.mask[0];
    same_as_left += w.mask[i] == w.mask[i - 1];
  }
  CHECK_MSG(same_as_first < 4 && same_as_left < 4, "keep patterns repeat: %zu like the first, %zu like the previous",
            same_as_first, same_as_left);
  /* every bit position is kept about half the time */
  int lo = 1 << 30, hi = 0;
  for (int j = 0; j < 32; j++) {
    int c = 0;
    for (size_t i = 0; i < nblk; i++) c += (w.mask[i] >> j) & 1u;
    lo = c < lo ? c : lo;
    hi = c > hi ? c : hi;
  }
  CHECK_MSG(lo > 3600 && hi < 4600, "bit frequencies %d..%d of %zu blocks", lo, hi, nblk);

  /* deterministic in the seed */
  CHECK_OK(q4s_ref_random(&w2, &s, 7));
  CHECK(!memcmp(w.qweight, w2.qweight, nblk * 8) && !memcmp(w.mask, w2.mask, nblk * 4) &&
        !memcmp(w.scales, w2.scales, 32 * 64 * 2) && !memcmp(w.zeros, w2.zeros, 32 * 64 * 2));
  q4s_ref_free(&w2);
  CHECK_OK(q4s_ref_random(&w2, &s, 8));
  CHECK(memcmp(w.mask, w2.mask, nblk * 4) != 0);
  q4s_ref_free(&w2);

  /* q4s_ref_weight against the unpacked codes, for every element */
  const size_t el = (size_t)64 * 4096;
  uint8_t *codes = malloc(el), *keep = malloc(el);
  if (!codes || !keep) {
    CHECK_MSG(0, "out of memory");
    return;
  }
  CHECK_OK(q4s_unpack(w.qweight, w.mask, 64, 4096, codes, keep));
  size_t bad = 0, pruned_nonzero_zero = 0;
  for (int n = 0; n < 64; n++)
    for (int k = 0; k < 4096; k++) {
      const size_t gi = (size_t)(k / 128) * 64 + n, e = (size_t)n * 4096 + k;
      const double z = q4_h2f(w.zeros[gi]);
      const double want = keep[e] ? ((double)codes[e] - z) * q4_h2f(w.scales[gi]) : 0.0;
      bad += q4s_ref_weight(&w, k, n) != want;
      pruned_nonzero_zero += !keep[e] && z != 0;
    }
  CHECK_MSG(bad == 0, "%zu weights differ from the unpacked codes", bad);
  CHECK(pruned_nonzero_zero > el / 4);  /* the 0.0 above was tested where (0 - z) * s is not 0 */
  /* packing the unpacked codes gives the same words back */
  uint32_t *qw = malloc(nblk * 8), *mask = malloc(nblk * 4);
  if (qw && mask) {
    CHECK_OK(q4s_pack(codes, keep, 64, 4096, qw, mask));
    CHECK(!memcmp(qw, w.qweight, nblk * 8) && !memcmp(mask, w.mask, nblk * 4));
  }
  free(qw), free(mask), free(codes), free(keep);
  q4s_ref_free(&w);
  CHECK(w.qweight == NULL && w.mask == NULL && w.scales == NULL && w.zeros == NULL);

  /* symmetric: every zero 8 */
  q4_shape sym = {Q4_FORMAT_Q4S, 16, 256, 256, Q4_SHAPE_SYMMETRIC};
  CHECK_OK(q4s_ref_random(&w, &sym, 3));
  int not8 = 0;
  for (int i = 0; i < 16; i++) not8 += w.zeros[i] != 0x4800;
  CHECK(not8 == 0);
  q4s_ref_free(&w);

  /* shapes it refuses */
  q4_shape bad_k = {Q4_FORMAT_Q4S, 8, 48, 48, 0}, bad_g = {Q4_FORMAT_Q4S, 8, 256, 96, 0},
           act = {Q4_FORMAT_Q4S, 8, 256, 128, Q4_SHAPE_ACT_ORDER}, bad_n = {Q4_FORMAT_Q4S, 0, 256, 128, 0};
  CHECK_ERR(q4s_ref_random(&w, &bad_k, 1), Q4_ERR_INVALID_ARG, "K = 48");
  CHECK_ERR(q4s_ref_random(&w, &bad_g, 1), Q4_ERR_INVALID_ARG, "group size 96");
  CHECK_ERR(q4s_ref_random(&w, &bad_n, 1), Q4_ERR_INVALID_ARG, "N = 0");
  CHECK_ERR(q4s_ref_random(&w, &act, 1), Q4_ERR_UNSUPPORTED, "act-order");
}

/* q4s_ref_dot against a dense sum over kept k of x[k] * (q - z) * s, built
** from the unpacked codes. */
static void test_ref_dot(void) {
  static const struct { int n, k, g, flags; } shapes[] = {
      {8, 32, 32, 0}, {16, 256, 128, 0}, {5, 1024, 1024, 0}, {8, 4096, 128, Q4_SHAPE_SYMMETRIC}, {4, 4096, 4096, 0}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int n = shapes[s].n, k = shapes[s].k, g = shapes[s].g;
    q4_shape sh = {Q4_FORMAT_Q4S, n, k, g, shapes[s].flags};
    q4s_host_weights w;
    CHECK_OK(q4s_ref_random(&w, &sh, 100 + s));
    uint8_t *codes = malloc((size_t)n * k), *keep = malloc((size_t)n * k);
    uint16_t *x = malloc((size_t)k * 2);
    if (!codes || !keep || !x) {
      CHECK_MSG(0, "out of memory");
      return;
    }
    CHECK_OK(q4s_unpack(w.qweight, w.mask, n, k, codes, keep));
    int bad = 0;
    for (int row = 0; row < 3; row++) {
      q4_ref_random_x(x, (size_t)k, 1000 * s + row);
      for (int c = 0; c < n; c++) {
        double want = 0, mag = 0;
        int kept = 0;
        for (int r = 0; r < k; r++) {
          if (!keep[(size_t)c * k + r]) continue;
          const size_t gi = (size_t)(r / g) * n + c;
          const double t = (double)q4_h2f(x[r]) *
                           (((double)codes[(size_t)c * k + r] - q4_h2f(w.zeros[gi])) * q4_h2f(w.scales[gi]));
          want += t;
          mag += fabs(t);
          kept++;
        }
        const double got = q4s_ref_dot(&w, x, c);
        if (kept != k / 2 || !(fabs(got - want) <= 1e-12 * mag)) {
          if (bad++ < 5)
            fprintf(stderr, "N=%d K=%d column %d: q4s_ref_dot %.17g, dense %.17g (%d kept)\n", n, k, c, got, want,
                    kept);
        }
      }
    }
    CHECK_MSG(bad == 0, "N=%d K=%d: %d dot products differ", n, k, bad);
    free(codes), free(keep), free(x);
    q4s_ref_free(&w);
  }
}

/* ---- NULL arguments ------------------------------------------------------------- */

static void test_null(void) {
  uint8_t codes[64], keep[64];
  uint32_t qw[4], mask[2];
  example(32, codes, keep);
  CHECK_ERR(q4s_pack(NULL, keep, 2, 32, qw, mask), Q4_ERR_INVALID_ARG, "codes is NULL");
  CHECK_ERR(q4s_pack(codes, NULL, 2, 32, qw, mask), Q4_ERR_INVALID_ARG, "keep is NULL");
  CHECK_ERR(q4s_pack(codes, keep, 2, 32, NULL, mask), Q4_ERR_INVALID_ARG, "qweight is NULL");
  CHECK_ERR(q4s_pack(codes, keep, 2, 32, qw, NULL), Q4_ERR_INVALID_ARG, "mask is NULL");
  CHECK_ERR(q4s_pack(NULL, NULL, 0, 0, NULL, NULL), Q4_ERR_INVALID_ARG, "is NULL");
  CHECK_ERR(q4s_validate(NULL, 2, 32), Q4_ERR_INVALID_ARG, "mask is NULL");
  CHECK_OK(q4s_pack(codes, keep, 2, 32, qw, mask));
  CHECK_ERR(q4s_unpack(NULL, mask, 2, 32, codes, keep), Q4_ERR_INVALID_ARG, "qweight is NULL");
  CHECK_ERR(q4s_unpack(qw, NULL, 2, 32, codes, keep), Q4_ERR_INVALID_ARG, "mask is NULL");
  CHECK_ERR(q4s_unpack(qw, mask, 2, 32, NULL, keep), Q4_ERR_INVALID_ARG, "codes is NULL");
  CHECK_ERR(q4s_unpack(qw, mask, 2, 32, codes, NULL), Q4_ERR_INVALID_ARG, "keep is NULL");
  q4_shape s = {Q4_FORMAT_Q4S, 8, 64, 64, 0};
  q4s_host_weights w;
  CHECK_ERR(q4s_ref_random(NULL, &s, 1), Q4_ERR_INVALID_ARG, "NULL");
  CHECK_ERR(q4s_ref_random(&w, NULL, 1), Q4_ERR_INVALID_ARG, "NULL");
  q4s_ref_free(NULL);  /* a no-op */
  CHECK(1);
}

/* What a product reads: 3 bits a weight for q4s (mask included), 4 for
** q4, plus fp16 scales and (unless symmetric) zeros per group and column. */
static void test_weight_bytes(void) {
  q4_shape s = {Q4_FORMAT_Q4S, 4096, 4096, 4096, 0};
  CHECK(q4_shape_weight_bytes(&s) == 4096u * 4096 * 3 / 8 + 4096 * 4);
  s.format = Q4_FORMAT_Q4;
  CHECK(q4_shape_weight_bytes(&s) == 4096u * 4096 / 2 + 4096 * 4);
  s.group_size = 128;
  s.flags = Q4_SHAPE_SYMMETRIC;
  CHECK(q4_shape_weight_bytes(&s) == 4096u * 4096 / 2 + 32 * 4096 * 2);
  s.format = Q4_FORMAT_Q4S;
  s.flags = 0;
  CHECK(q4_shape_weight_bytes(&s) == 4096u * 4096 * 3 / 8 + 32 * 4096 * 4);
}

int main(void) {
  test_weight_bytes();
  test_hand_pack();
  test_hand_weights();
  test_round_trip();
  test_validate();
  test_pack_errors();
  test_ref_random();
  test_ref_dot();
  test_null();
  return q4test_done("test_sparse");
}
