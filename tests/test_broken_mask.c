/*
** test_broken_mask.c -- q4s weights whose mask breaks the 16-of-32 rule give
** NaN in exactly the columns of the bad words, through every kernel family
** that takes q4s (docs/FORMATS.md promises it: never a wrong product).
**
** Needs a GPU (prints "skipped" without one). For each template that takes
** q4s, on per-channel and group-128 weights: its first and last variants
** that the shape admits, each at the smallest M it serves. One mask word
** (column 37) gets 15 bits and one (column 300) 17; then every element of
** those two columns must be NaN, and every other one finite and within
** the usual error of the reference (computed from the good mask).
*/
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_bed.h"
#include "q4_handle.h"
#include "q4_ref.h"
#include "q4gen.h"
#include "q4test.h"
#include "q4tune.h"

#define N_ 4096
#define K_ 4096
static const int bad_cols[2] = {37, 300};
static const int bad_blocks[2] = {5, 127};  /* row blocks of the bad words */

/* Kernel for variant v of shape s: rendered, then compiled and loaded. */
static q4_status load(q4_handle *h, const q4_shape *s, q4_variant *v, q4_kernel **k) {
  pthread_mutex_lock(&h->lock);
  q4_status st = q4gen_render(h->gen, s, h->arch, v);
  if (!st) st = q4_ctx_push(h);
  if (!st) {
    st = q4_kernel_get(h, v, k);
    q4_ctx_pop(h);
  }
  q4_variant_free(v);
  pthread_mutex_unlock(&h->lock);
  return st;
}

/* Word (b, n) of weight copy 0's mask: read it, or write it. */
static int mask_word(q4_bed *b, int blk, int n, uint32_t *word, int write) {
  const CUdeviceptr at = (CUdeviceptr)(uintptr_t)b->w[0].mask + ((size_t)blk * b->shape.n + n) * 4;
  if (q4_ctx_push(b->h)) return 0;
  const int ok = write ? b->h->cu->MemcpyHtoD(at, word, 4) == CUDA_SUCCESS && b->h->cu->StreamSynchronize(NULL) == CUDA_SUCCESS
                       : b->h->cu->MemcpyDtoH(word, at, 4) == CUDA_SUCCESS;
  q4_ctx_pop(b->h);
  return ok;
}

/* One product through kernel k with y zeroed first (so that NaN can only
** come from the kernel), then y and the reference back on the host. */
static int run_once(q4_bed *b, q4_kernel *k, uint16_t *y, float *ref) {
  const size_t el = (size_t)b->m * b->shape.n;
  if (q4_ctx_push(b->h)) return 0;
  const q4_cuda_api *cu = b->h->cu;
  int ok = cu->MemsetD16Async(b->y, 0, el, b->stream) == CUDA_SUCCESS;
  ok = ok && q4_bed_run_kernel(k, b, &b->w[0], b->stream) == Q4_OK;
  ok = ok && cu->StreamSynchronize(b->stream) == CUDA_SUCCESS;
  ok = ok && cu->MemcpyDtoH(y, b->y, el * 2) == CUDA_SUCCESS && cu->MemcpyDtoH(ref, b->ref, el * 4) == CUDA_SUCCESS;
  q4_ctx_pop(b->h);
  return ok;
}

static void one_variant(q4_bed *b, q4_variant *v) {
  const int m = v->m_min > 1 ? v->m_min : 1;
  q4_kernel *k = NULL;
  CHECK_OK(load(b->h, &b->shape, v, &k));
  CHECK_OK(q4_bed_set_m(b, m, 1000u + (unsigned)m));
  if (!k || b->m != m) return;
  uint32_t good[2];
  for (int i = 0; i < 2; i++) {
    CHECK(mask_word(b, bad_blocks[i], bad_cols[i], &good[i], 0));
    /* 15 bits: the lowest set one cleared; 17: the lowest clear one set */
    uint32_t bad = i == 0 ? good[i] & (good[i] - 1) : good[i] | (good[i] + 1);
    CHECK(mask_word(b, bad_blocks[i], bad_cols[i], &bad, 1));
  }
  const size_t el = (size_t)m * N_;
  uint16_t *y = malloc(el * 2);
  float *ref = malloc(el * 4);
  if (y && ref && run_once(b, k, y, ref)) {
    size_t nan_bad = 0, nan_other = 0;
    double err = 0, norm = 0;
    for (int r = 0; r < m; r++)
      for (int n = 0; n < N_; n++) {
        const float got = q4_h2f(y[(size_t)r * N_ + n]), want = ref[(size_t)r * N_ + n];
        if (n == bad_cols[0] || n == bad_cols[1]) {
          nan_bad += isnan(got) != 0;
        } else if (!isfinite(got)) {
          nan_other++;
        } else {
          err += (double)(got - want) * (got - want);
          norm += (double)want * want;
        }
      }
    const double rel = norm > 0 ? sqrt(err / norm) : INFINITY;
    CHECK_MSG(nan_bad == (size_t)2 * m && nan_other == 0 && rel <= Q4_REL_ERROR_MAX,
              "%s[%s] g=%d M=%d: %zu of %d elements NaN in the bad columns, %zu not finite elsewhere, "
              "relative error %.2e elsewhere", v->tmpl, v->params, b->shape.group_size, m, nan_bad, 2 * m,
              nan_other, rel);
  } else {
    CHECK_MSG(0, "%s[%s]: the product did not run: %s", v->tmpl, v->params, q4_last_error());
  }
  free(y), free(ref);
  for (int i = 0; i < 2; i++) CHECK(mask_word(b, bad_blocks[i], bad_cols[i], &good[i], 1));
}

/* The first and last variants of every q4s template for this shape. */
static void one_shape(q4_handle *h, int group_size) {
  const q4_shape s = {Q4_FORMAT_Q4S, N_, K_, group_size, 0};
  q4_bed bed;
  memset(&bed, 0, sizeof bed);
  CHECK_OK(q4_bed_open(&bed, h, &s, 77u + (unsigned)group_size, 1));
  if (!bed.w) return;
  int families = 0;
  for (int t = 0; t < q4gen_count(h->gen); t++) {
    if (!q4gen_supports(h->gen, t, Q4_FORMAT_Q4S)) continue;
    const char *name = q4gen_name(h->gen, t);
    q4_variant *list = NULL;
    int count = 0;
    pthread_mutex_lock(&h->lock);
    q4_status st = q4gen_enumerate(h->gen, name, &s, h->arch, &list, &count);
    pthread_mutex_unlock(&h->lock);
    CHECK_OK(st);
    if (count > 0) families++;
    for (int i = 0; i < count; i += count > 1 ? count - 1 : 1) {
      printf("test_broken_mask: %s[%s] g=%d\n", list[i].tmpl, list[i].params, group_size);
      one_variant(&bed, &list[i]);
    }
    q4gen_free_list(list, count);
  }
  /* q4_decode and q4_dqgemm on every arch q4tune takes; q4s_imma (per
  ** channel, or groups of whole 128-row units) from sm_80, q4_wgmma on sm_90 */
  const int unit_groups = group_size == K_ || group_size % 128 == 0;
  const int want = 2 + (h->arch >= 80 && unit_groups) + (h->arch == 90);
  CHECK_MSG(families == want, "sm_%d g=%d: %d q4s families, want %d", h->arch, group_size, families, want);
  q4_bed_close(&bed);
}

int main(void) {
  make_tmpdir("broken_mask");
  q4_handle *h = q4test_gpu("test_broken_mask");
  if (h) {
    printf("test_broken_mask: on %s (sm_%d)\n", h->info.name, h->arch);
    one_shape(h, K_);
    one_shape(h, 128);
    q4_destroy(h);
  }
  remove_tmpdir();
  return q4test_done("test_broken_mask");
}
