/*
** test_reference.c -- the host reference of the int4 format (runtime/q4_ref.c)
** against values computed by hand: fp16 conversion, code extraction,
** dequantization, dot products, the random generators and q4_rel_error.
** Every expected value below is a literal worked out from ../shared/FORMATS.md:
**   w[k][n] = (q[k][n] - zeros[k/group][n]) * scales[k/group][n]
**   qweight uint32 [K/8][N], code of k = 8r+i in bits 4i..4i+3 of word (r, n).
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_ref.h"
#include "q4test.h"

/* ---- fp16 conversion ------------------------------------------------------ */

static float bits_to_float(uint32_t b) {
  float f;
  memcpy(&f, &b, 4);
  return f;
}

#define CHECK_F2H(f, want) do { \
    uint16_t got_ = q4_f2h(f); \
    CHECK_MSG(got_ == (want), "q4_f2h(%.9g) = 0x%04x, want 0x%04x", (double)(f), got_, (unsigned)(want)); \
  } while (0)

#define CHECK_H2F(h, want) do { \
    float got_ = q4_h2f(h); \
    CHECK_MSG(got_ == (float)(want), "q4_h2f(0x%04x) = %.9g, want %.9g", (unsigned)(h), (double)got_, (double)(want)); \
  } while (0)

static void test_f2h(void) {
  CHECK_F2H(0.0f, 0x0000);
  CHECK_F2H(-0.0f, 0x8000);
  CHECK_F2H(1.0f, 0x3c00);
  CHECK_F2H(-1.0f, 0xbc00);
  CHECK_F2H(-2.0f, 0xc000);
  CHECK_F2H(0.5f, 0x3800);
  CHECK_F2H(0.25f, 0x3400);
  CHECK_F2H(3.0f, 0x4200);
  CHECK_F2H(7.5f, 0x4780);
  CHECK_F2H(1.0f / 3.0f, 0x3555);           /* 0.333251953125 */
  CHECK_F2H(65504.0f, 0x7bff);              /* largest finite */
  CHECK_F2H(-65504.0f, 0xfbff);
  CHECK_F2H(65519.0f, 0x7bff);              /* below the half-way point */
  CHECK_F2H(65520.0f, 0x7c00);              /* tie 65504|65536: even is 65536 = Inf */
  CHECK_F2H(65536.0f, 0x7c00);
  CHECK_F2H(1e10f, 0x7c00);
  CHECK_F2H(-1e10f, 0xfc00);
  CHECK_F2H(0x1p-14f, 0x0400);              /* smallest normal */
  CHECK_F2H(0x1p-24f, 0x0001);              /* smallest subnormal */
  CHECK_F2H(-0x1p-24f, 0x8001);
  CHECK_F2H(0x3p-24f, 0x0003);
  CHECK_F2H(1023.0f * 0x1p-24f, 0x03ff);    /* largest subnormal */
  CHECK_F2H(0x1p-25f, 0x0000);              /* tie 0|2^-24: even is 0 */
  CHECK_F2H(0x3p-25f, 0x0002);              /* tie 1|2 subnormal steps: even is 2 */
  CHECK_F2H(0x5p-25f, 0x0002);              /* tie 2|3: even is 2 */
  CHECK_F2H(0x1.8p-25f, 0x0001);            /* 0.75 step: rounds up */
  CHECK_F2H(0x1p-26f, 0x0000);              /* 0.25 step: rounds down */
  CHECK_F2H(0x1.ffcp-15f, 0x0400);          /* 1023.5 subnormal steps: tie rounds up to min normal */
  /* ulp of fp16 at 1 is 2^-10; half an ulp is 2^-11 */
  CHECK_F2H(1.0f + 0x1p-11f, 0x3c00);       /* tie: 0x3c00 is even */
  CHECK_F2H(1.0f + 0x3p-11f, 0x3c02);       /* tie 0x3c01|0x3c02: even is 0x3c02 */
  CHECK_F2H(1.0f + 0x1p-11f + 0x1p-20f, 0x3c01);  /* just above the tie */
  CHECK_F2H(1.0f + 0x1p-11f - 0x1p-20f, 0x3c00);  /* just below the tie */
  CHECK_F2H(2048.0f + 1.0f, 0x6800);        /* ulp 2 at 2048: tie to even 2048 */
  CHECK_F2H(2048.0f + 3.0f, 0x6802);        /* tie 2050|2052: even is 2052 */
  CHECK_F2H(INFINITY, 0x7c00);
  CHECK_F2H(-INFINITY, 0xfc00);
  uint16_t n = q4_f2h(NAN);
  CHECK_MSG((n & 0x7c00) == 0x7c00 && (n & 0x03ff) != 0, "q4_f2h(NaN) = 0x%04x is not a NaN", n);
  n = q4_f2h(-NAN);
  CHECK_MSG((n & 0x7c00) == 0x7c00 && (n & 0x03ff) != 0, "q4_f2h(-NaN) = 0x%04x is not a NaN", n);
  /* a NaN whose payload lives only in the low 13 bits must stay a NaN */
  n = q4_f2h(bits_to_float(0x7f800001u));
  CHECK_MSG((n & 0x7c00) == 0x7c00 && (n & 0x03ff) != 0, "q4_f2h(NaN 0x7f800001) = 0x%04x is not a NaN", n);
}

static void test_h2f(void) {
  CHECK_H2F(0x0000, 0.0f);
  CHECK(signbit(q4_h2f(0x8000)) && q4_h2f(0x8000) == 0.0f);
  CHECK_H2F(0x3c00, 1.0f);
  CHECK_H2F(0xc000, -2.0f);
  CHECK_H2F(0x3800, 0.5f);
  CHECK_H2F(0x3555, 0.333251953125f);
  CHECK_H2F(0x7bff, 65504.0f);
  CHECK_H2F(0xfbff, -65504.0f);
  CHECK_H2F(0x0001, 5.9604644775390625e-08f);  /* 2^-24 */
  CHECK_H2F(0x8001, -5.9604644775390625e-08f);
  CHECK_H2F(0x03ff, 6.0975551605224609375e-05f);  /* 1023 * 2^-24 */
  CHECK_H2F(0x0400, 6.103515625e-05f);          /* 2^-14 */
  CHECK_H2F(0x3c01, 1.0009765625f);
  CHECK_H2F(0x4780, 7.5f);
  CHECK_H2F(0x7c00, INFINITY);
  CHECK_H2F(0xfc00, -INFINITY);
  CHECK(isnan(q4_h2f(0x7e00)));
  CHECK(isnan(q4_h2f(0x7c01)));
  CHECK(isnan(q4_h2f(0xfe00)));
  /* every non-NaN half survives h -> float -> h */
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) continue;
    if (q4_f2h(q4_h2f((uint16_t)h)) != h) {
      if (bad++ < 5) fprintf(stderr, "round trip of 0x%04x gives 0x%04x\n", h, q4_f2h(q4_h2f((uint16_t)h)));
    }
  }
  CHECK_MSG(bad == 0, "%d halves do not round-trip", bad);
}

/* ---- a hand-built weight matrix ------------------------------------------- */

enum { TK = 16, TN = 8 };

/* qweight [K/8 = 2][N = 8]. Word (r, n): code of k = 8r + i in bits 4i..4i+3. */
static uint32_t tq[2][TN] = {
    /* r = 0: rows 0..7 */
    {0x76543210u,   /* n=0: code(k) = k */
     0x0000000fu,   /* n=1: k=0 -> 15, k=1..7 -> 0 */
     0x12345678u,   /* n=2: k=0 -> 8, k=1 -> 7, ..., k=7 -> 1 */
     0x88888888u, 0x88888888u, 0x88888888u, 0x88888888u,
     0xf0000000u},  /* n=7: k=7 -> 15 */
    /* r = 1: rows 8..15 */
    {0xfedcba98u,   /* n=0: code(k) = k */
     0x00000000u,
     0x0000a000u,   /* n=2: k=11 (i=3) -> 10, rest 0 */
     0x88888888u, 0x88888888u, 0x88888888u, 0x88888888u,
     0x0000000fu},  /* n=7: k=8 -> 15 */
};

static void fill_g8(uint16_t scales[2][TN], uint16_t zeros[2][TN]) {
  for (int n = 0; n < TN; n++) {
    scales[0][n] = 0x3800; /* 0.5 */
    zeros[0][n] = 0x4800;  /* 8 */
    scales[1][n] = 0x3400; /* 0.25 */
    zeros[1][n] = 0x4780;  /* 7.5 */
  }
  scales[0][1] = 0x4000;   /* column 1, group 0: scale 2, zero 0 */
  zeros[0][1] = 0x0000;
}

#define CHECK_D(expr, want) do { \
    double got_ = (expr); \
    CHECK_MSG(got_ == (double)(want), "%s = %.17g, want %.17g", #expr, got_, (double)(want)); \
  } while (0)

static void test_hand_weights(void) {
  uint16_t scales[2][TN], zeros[2][TN];
  fill_g8(scales, zeros);
  q4_host_weights w = {{Q4_FORMAT_Q4, TN, TK, 8}, &tq[0][0], &scales[0][0], &zeros[0][0]};

  /* codes */
  for (int k = 0; k < TK; k++) CHECK_MSG(q4_ref_code(&w, k, 0) == k, "code(%d, 0) = %d", k, q4_ref_code(&w, k, 0));
  CHECK(q4_ref_code(&w, 0, 1) == 15);
  for (int k = 1; k < TK; k++) CHECK(q4_ref_code(&w, k, 1) == 0);
  CHECK(q4_ref_code(&w, 0, 2) == 8);
  CHECK(q4_ref_code(&w, 1, 2) == 7);
  CHECK(q4_ref_code(&w, 5, 2) == 3);
  CHECK(q4_ref_code(&w, 7, 2) == 1);
  CHECK(q4_ref_code(&w, 11, 2) == 10);
  CHECK(q4_ref_code(&w, 10, 2) == 0);
  CHECK(q4_ref_code(&w, 12, 2) == 0);
  CHECK(q4_ref_code(&w, 6, 3) == 8);
  CHECK(q4_ref_code(&w, 7, 7) == 15);
  CHECK(q4_ref_code(&w, 8, 7) == 15);
  CHECK(q4_ref_code(&w, 6, 7) == 0);
  CHECK(q4_ref_code(&w, 9, 7) == 0);

  /* weights: (q - z) * s; group 0 = rows 0..7, group 1 = rows 8..15 */
  CHECK_D(q4_ref_weight(&w, 0, 0), -4.0);     /* (0 - 8) * 0.5 */
  CHECK_D(q4_ref_weight(&w, 3, 0), -2.5);     /* (3 - 8) * 0.5 */
  CHECK_D(q4_ref_weight(&w, 7, 0), -0.5);     /* (7 - 8) * 0.5 */
  CHECK_D(q4_ref_weight(&w, 8, 0), 0.125);    /* (8 - 7.5) * 0.25 */
  CHECK_D(q4_ref_weight(&w, 12, 0), 1.125);   /* (12 - 7.5) * 0.25 */
  CHECK_D(q4_ref_weight(&w, 15, 0), 1.875);   /* (15 - 7.5) * 0.25 */
  CHECK_D(q4_ref_weight(&w, 0, 1), 30.0);     /* (15 - 0) * 2 */
  CHECK_D(q4_ref_weight(&w, 1, 1), 0.0);      /* (0 - 0) * 2 */
  CHECK_D(q4_ref_weight(&w, 9, 1), -1.875);   /* (0 - 7.5) * 0.25 */
  CHECK_D(q4_ref_weight(&w, 0, 2), 0.0);      /* (8 - 8) * 0.5 */
  CHECK_D(q4_ref_weight(&w, 11, 2), 0.625);   /* (10 - 7.5) * 0.25 */
  CHECK_D(q4_ref_weight(&w, 4, 3), 0.0);      /* (8 - 8) * 0.5 */
  CHECK_D(q4_ref_weight(&w, 13, 3), 0.125);   /* (8 - 7.5) * 0.25 */

  /* dot products */
  uint16_t ones[TK], step[TK], alt[TK];
  for (int k = 0; k < TK; k++) {
    ones[k] = 0x3c00;                        /* 1 */
    step[k] = k < 8 ? 0x3c00 : 0x4000;       /* 1 for k < 8, 2 for k >= 8 */
    alt[k] = (k & 1) ? 0xb800 : 0x3c00;      /* 1, -0.5, 1, -0.5, ... */
  }
  /* column 0: group 0 sums (k-8)*0.5 for k=0..7 = -18; group 1 sums
  ** (k-7.5)*0.25 for k=8..15 = 8 */
  CHECK_D(q4_ref_dot(&w, ones, 0), -10.0);
  CHECK_D(q4_ref_dot(&w, step, 0), -2.0);     /* -18 + 2 * 8 */
  /* alt, column 0: even k of group 0: (0+2+4+6 - 32)*0.5 = -10, odd k:
  ** -0.5 * (1+3+5+7 - 32)*0.5 = 4; group 1 even k: (8+10+12+14 - 30)*0.25
  ** = 3.5, odd k: -0.5 * (9+11+13+15 - 30)*0.25 = -2.25. Total -4.75. */
  CHECK_D(q4_ref_dot(&w, alt, 0), -4.75);
  /* column 1: group 0 = 30 + 0*7; group 1 = 8 * (0-7.5)*0.25 = -15 */
  CHECK_D(q4_ref_dot(&w, ones, 1), 15.0);
  /* column 2: group 0 codes 8..1: sum (c-8)*0.5 = (36 - 64)*0.5 = -14;
  ** group 1: 7 codes 0 and one 10: ((7*0 + 10) - 60)*0.25 = -12.5 */
  CHECK_D(q4_ref_dot(&w, ones, 2), -26.5);
  /* columns 3..6: group 0 all 0, group 1 all 0.125 -> 1 */
  for (int n = 3; n < 7; n++) CHECK_D(q4_ref_dot(&w, ones, n), 1.0);
  /* column 7: group 0: 7 * (0-8)*0.5 + (15-8)*0.5 = -28 + 3.5 = -24.5;
  ** group 1: (15-7.5)*0.25 + 7 * (0-7.5)*0.25 = 1.875 - 13.125 = -11.25 */
  CHECK_D(q4_ref_dot(&w, ones, 7), -35.75);

  /* per-channel: one group of 16 rows */
  uint16_t cs[TN], cz[TN];
  for (int n = 0; n < TN; n++) {
    cs[n] = 0x3800;  /* 0.5 */
    cz[n] = 0x4800;  /* 8 */
  }
  cs[2] = 0x4200;    /* column 2: scale 3, zero 2.5 */
  cz[2] = 0x4100;
  q4_host_weights pc = {{Q4_FORMAT_Q4, TN, TK, TK}, &tq[0][0], cs, cz};
  CHECK_D(q4_ref_weight(&pc, 0, 0), -4.0);
  CHECK_D(q4_ref_weight(&pc, 12, 0), 2.0);    /* (12 - 8) * 0.5 */
  CHECK_D(q4_ref_weight(&pc, 15, 0), 3.5);
  CHECK_D(q4_ref_weight(&pc, 11, 2), 22.5);   /* (10 - 2.5) * 3 */
  CHECK_D(q4_ref_weight(&pc, 12, 2), -7.5);   /* (0 - 2.5) * 3 */
  /* column 0: (sum 0..15 = 120 - 16*8) * 0.5 = -4 */
  CHECK_D(q4_ref_dot(&pc, ones, 0), -4.0);
  /* column 0 with step: (sum 0..7 - 64)*0.5 + 2*(sum 8..15 - 64)*0.5 = -18 + 28 = 10 */
  CHECK_D(q4_ref_dot(&pc, step, 0), 10.0);
  /* column 2: codes 8,7,...,1, then 0,0,0,10,0,0,0,0: sum 46; (46 - 16*2.5)*3 = 18 */
  CHECK_D(q4_ref_dot(&pc, ones, 2), 18.0);
}

/* ---- random data ----------------------------------------------------------- */

static void test_random(void) {
  /* splitmix64 from state 0: its well-known first output */
  uint64_t st = 0;
  CHECK(q4_rand_next(&st) == 0xe220a8397b1dcdafull);
  CHECK(st == 0x9e3779b97f4a7c15ull);
  st = 42;
  for (int i = 0; i < 1000; i++) {
    float u = q4_rand_uniform(&st, -3.0f, 5.0f);
    if (!(u >= -3.0f && u < 5.0f)) {
      CHECK_MSG(0, "q4_rand_uniform gave %g outside [-3, 5)", (double)u);
      break;
    }
  }

  const q4_shape s = {Q4_FORMAT_Q4, 16, 64, 32};
  const size_t words = 64 / 8 * 16, groups = 2 * 16;
  q4_host_weights a, b, c;
  CHECK_OK(q4_ref_random(&a, &s, 1234));
  CHECK_OK(q4_ref_random(&b, &s, 1234));
  CHECK_OK(q4_ref_random(&c, &s, 1235));
  CHECK(a.shape.n == 16 && a.shape.k == 64 && a.shape.group_size == 32);
  CHECK(!memcmp(a.qweight, b.qweight, words * 4));
  CHECK(!memcmp(a.scales, b.scales, groups * 2));
  CHECK(!memcmp(a.zeros, b.zeros, groups * 2));
  CHECK(memcmp(a.qweight, c.qweight, words * 4));
  CHECK(memcmp(a.scales, c.scales, groups * 2));

  int seen[16] = {0};
  for (int k = 0; k < 64; k++)
    for (int n = 0; n < 16; n++) {
      int q = q4_ref_code(&a, k, n);
      if (q >= 0 && q < 16) seen[q]++;
    }
  int covered = 0;
  for (int q = 0; q < 16; q++) covered += seen[q] > 0;
  CHECK_MSG(covered == 16, "random codes cover %d of 16 values", covered);

  int integral = 0, fractional = 0, bad_scale = 0, bad_zero = 0;
  for (size_t i = 0; i < groups; i++) {
    /* documented: scales in [0.002, 0.02], zeros in [4, 11]; allow fp16 rounding */
    float sc = q4_h2f(a.scales[i]), z = q4_h2f(a.zeros[i]);
    if (!(sc >= 0.002f * (1 - 1e-3f) && sc <= 0.02f * (1 + 1e-3f))) bad_scale++;
    if (!(z >= 4.0f && z <= 11.0f)) bad_zero++;
    if (z == floorf(z)) integral++;
    else fractional++;
  }
  CHECK_MSG(bad_scale == 0, "%d scales outside [0.002, 0.02]", bad_scale);
  CHECK_MSG(bad_zero == 0, "%d zeros outside [4, 11]", bad_zero);
  CHECK_MSG(integral > 0 && fractional > 0, "zeros: %d integral, %d fractional", integral, fractional);

  q4_ref_free(&a);
  q4_ref_free(&b);
  q4_ref_free(&c);
  CHECK(a.qweight == NULL && a.scales == NULL && a.zeros == NULL);
  q4_ref_free(&a);  /* twice is harmless */
  q4_ref_free(NULL);

  /* bad shapes */
  q4_host_weights d;
  q4_shape bad = {Q4_FORMAT_Q4, 16, 64, 0};
  CHECK(q4_ref_random(&d, &bad, 1) == Q4_ERR_INVALID_ARG);
  bad.group_size = 48;  /* 64 % 48 != 0 */
  CHECK(q4_ref_random(&d, &bad, 1) == Q4_ERR_INVALID_ARG);
  bad.group_size = 32;
  bad.k = 60;           /* not a multiple of 8 */
  CHECK(q4_ref_random(&d, &bad, 1) == Q4_ERR_INVALID_ARG);
  bad.k = 64;
  bad.n = 0;
  CHECK(q4_ref_random(&d, &bad, 1) == Q4_ERR_INVALID_ARG);
  CHECK(q4_ref_random(NULL, &s, 1) == Q4_ERR_INVALID_ARG);
  CHECK(q4_ref_random(&d, NULL, 1) == Q4_ERR_INVALID_ARG);
  CHECK(q4_last_error()[0] != '\0');

  /* activations */
  uint16_t x1[512], x2[512], x3[512];
  q4_ref_random_x(x1, 512, 7);
  q4_ref_random_x(x2, 512, 7);
  q4_ref_random_x(x3, 512, 8);
  CHECK(!memcmp(x1, x2, sizeof x1));
  CHECK(memcmp(x1, x3, sizeof x1));
  int out = 0, neg = 0, pos = 0, big = 0;
  for (int i = 0; i < 512; i++) {
    const float v = q4_h2f(x1[i]);
    const float bound = i % Q4_REF_OUTLIER_EVERY == Q4_REF_OUTLIER_EVERY / 2 ? Q4_REF_OUTLIER_SCALE : 1.0f;
    if (!(v >= -bound && v <= bound)) out++;
    big += fabsf(v) > 1.0f;
    neg += v < 0;
    pos += v > 0;
  }
  CHECK_MSG(out == 0, "%d activations outside their range", out);
  CHECK_MSG(big >= 4, "%d outliers of 8 above 1", big);  /* the outlier channels are there */
  CHECK(neg > 100 && pos > 100);
}

/* ---- relative error ------------------------------------------------------ */

static void test_rel_error(void) {
  /* identical */
  const double ref[4] = {1.0, -2.0, 0.5, 65504.0};
  uint16_t y[4] = {0x3c00, 0xc000, 0x3800, 0x7bff};
  CHECK_D(q4_rel_error(y, ref, 4), 0.0);
  /* NaN and Inf in y give +inf */
  y[2] = 0x7e00;
  double e = q4_rel_error(y, ref, 4);
  CHECK_MSG(isinf(e) && e > 0, "NaN in y gave %g", e);
  y[2] = 0x7c00;
  e = q4_rel_error(y, ref, 4);
  CHECK_MSG(isinf(e) && e > 0, "Inf in y gave %g", e);
  y[2] = 0xfc00;
  e = q4_rel_error(y, ref, 4);
  CHECK_MSG(isinf(e) && e > 0, "-Inf in y gave %g", e);
  /* ref {3, 4} (norm 5), y {3, 4.5}: ||(0, 0.5)|| / 5 = 0.1 */
  const double r2[2] = {3.0, 4.0};
  const uint16_t y2[2] = {0x4200, 0x4480};
  CHECK_MSG(fabs(q4_rel_error(y2, r2, 2) - 0.1) < 1e-15, "got %.17g, want 0.1", q4_rel_error(y2, r2, 2));
  /* ref {1, 0, 0, 0}, y {1, 0, 0, 0.5}: 0.5 exactly */
  const double r3[4] = {1, 0, 0, 0};
  const uint16_t y3[4] = {0x3c00, 0, 0, 0x3800};
  CHECK_D(q4_rel_error(y3, r3, 4), 0.5);
  /* ref {2, 2, 2, 2} (norm 4), y {2, 2, 2, -1}: 3 / 4 */
  const double r4[4] = {2, 2, 2, 2};
  const uint16_t y4[4] = {0x4000, 0x4000, 0x4000, 0xbc00};
  CHECK_D(q4_rel_error(y4, r4, 4), 0.75);
  /* one fp16 ulp off at 1: 2^-10 */
  const double r5[1] = {1.0};
  const uint16_t y5[1] = {0x3c01};
  CHECK_D(q4_rel_error(y5, r5, 1), 0x1p-10);
  /* zero reference: zero output is exact, anything else infinitely wrong */
  const double z[2] = {0, 0};
  const uint16_t yz[2] = {0, 0x8000}, ynz[2] = {0, 0x0001};
  CHECK_D(q4_rel_error(yz, z, 2), 0.0);
  e = q4_rel_error(ynz, z, 2);
  CHECK(isinf(e) && e > 0);
  CHECK_D(q4_rel_error(y, ref, 0), 0.0);  /* nothing to compare */
}

/* Act-order: row k of W multiplies x[perm[k]]; symmetric: every zero 8. */
static void test_weight_kinds(void) {
  uint16_t scales[2][TN], zeros[2][TN];
  fill_g8(scales, zeros);
  int32_t perm[TK];
  for (int k = 0; k < TK; k++) perm[k] = TK - 1 - k;  /* reversed */
  q4_host_weights w = {{Q4_FORMAT_Q4, TN, TK, 8, Q4_SHAPE_ACT_ORDER}, &tq[0][0], &scales[0][0], &zeros[0][0], perm};
  uint16_t x[TK];
  for (int k = 0; k < TK; k++) x[k] = q4_f2h(0.0f);
  x[0] = q4_f2h(1.0f);  /* picks row k with perm[k] == 0: k = 15, (15 - 7.5) * 0.25 */
  CHECK_D(q4_ref_dot(&w, x, 0), 1.875);
  x[0] = q4_f2h(0.0f);
  x[15] = q4_f2h(1.0f);  /* k = 0: (0 - 8) * 0.5 */
  CHECK_D(q4_ref_dot(&w, x, 0), -4.0);
  x[15] = q4_f2h(2.0f);
  x[14] = q4_f2h(-1.0f);  /* 2 * W[0][0] - W[1][0] = -8 - (1 - 8) * 0.5 */
  CHECK_D(q4_ref_dot(&w, x, 0), -4.5);

  const q4_shape s = {Q4_FORMAT_Q4, 16, 64, 32, Q4_SHAPE_SYMMETRIC | Q4_SHAPE_ACT_ORDER};
  q4_host_weights r;
  CHECK_OK(q4_ref_random(&r, &s, 99));
  int all8 = 1, seen[64] = {0}, is_perm = r.perm != NULL;
  for (int i = 0; i < 2 * 16; i++) all8 &= r.zeros[i] == q4_f2h(8.0f);
  for (int k = 0; is_perm && k < 64; k++) {
    if (r.perm[k] < 0 || r.perm[k] >= 64 || seen[r.perm[k]]++) is_perm = 0;
  }
  CHECK_MSG(all8, "symmetric random weights must have every zero 8");
  CHECK_MSG(is_perm, "act-order random weights must carry a permutation of K");
  q4_ref_free(&r);
  const q4_shape plain = {Q4_FORMAT_Q4, 16, 64, 32, 0};
  CHECK_OK(q4_ref_random(&r, &plain, 99));
  CHECK(r.perm == NULL);
  q4_ref_free(&r);
}

int main(void) {
  test_f2h();
  test_h2f();
  test_hand_weights();
  test_random();
  test_rel_error();
  test_weight_kinds();
  return q4test_done("test_reference");
}
