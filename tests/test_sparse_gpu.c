/*
** test_sparse_gpu.c -- the GPU side of the 16:32 sparse format (q4s):
** q4_sparse_pack, q4_sparse_validate, q4_sparse_unpack.
**
** Without a GPU: argument checks (all made before the handle is used, so a
** dummy handle pointer serves) and an NVRTC compile of the kernels' source
** for sm_80 and sm_90. With a GPU: packing random matrices bit for bit like
** the host's q4s_pack, unpacking back, validation, and rejection of bad
** input with the host's message and nothing written. Only the driver API
** (through the handle) touches the GPU.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_handle.h"
#include "q4_nvrtc.h"
#include "q4_ref.h"
#include "q4_sparse.h"
#include "q4_sparse_gpu.h"
#include "q4test.h"
#include "q4tune.h"

/* Never dereferenced: every argument error is found before the handle is used. */
#define FAKE_H ((q4_handle *)(uintptr_t)0x10)
#define DEV ((void *)(uintptr_t)0x10000)       /* a 16-byte aligned "device pointer" */
#define DEV_ODD ((void *)(uintptr_t)0x10004)   /* 4-byte aligned only */

/* ---- without a GPU ------------------------------------------------------------- */

static void test_args_pack(void) {
  CHECK_ERR(q4_sparse_pack(NULL, DEV, DEV, 8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "q4_sparse_pack: handle is NULL");
  CHECK_ERR(q4_sparse_pack(FAKE_H, NULL, DEV, 8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "codes is NULL");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, NULL, 8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "keep is NULL");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 8, 32, NULL, DEV, NULL), Q4_ERR_INVALID_ARG, "qweight is NULL");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 8, 32, DEV, NULL, NULL), Q4_ERR_INVALID_ARG, "mask is NULL");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 0, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "N = 0");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, -8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "N = -8");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 12, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG,
            "N = 12 is not a multiple of 8");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 8, 0, DEV, DEV, NULL), Q4_ERR_INVALID_ARG,
            "K = 0 is not a positive multiple of 32");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 8, -32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "K = -32");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 8, 48, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "K = 48");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 8, 32, DEV_ODD, DEV, NULL), Q4_ERR_INVALID_ARG,
            "qweight = 0x10004 is not 16-byte aligned");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, DEV, 8, 32, DEV, DEV_ODD, NULL), Q4_ERR_INVALID_ARG,
            "mask = 0x10004 is not 16-byte aligned");
  /* the handle is checked first, then pointers, then sizes */
  CHECK_ERR(q4_sparse_pack(NULL, NULL, NULL, 0, 0, NULL, NULL, NULL), Q4_ERR_INVALID_ARG, "handle is NULL");
  CHECK_ERR(q4_sparse_pack(FAKE_H, DEV, NULL, 0, 0, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "keep is NULL");
}

static void test_args_validate(void) {
  CHECK_ERR(q4_sparse_validate(NULL, DEV, 8, 32, NULL), Q4_ERR_INVALID_ARG, "q4_sparse_validate: handle is NULL");
  CHECK_ERR(q4_sparse_validate(FAKE_H, NULL, 8, 32, NULL), Q4_ERR_INVALID_ARG, "mask is NULL");
  CHECK_ERR(q4_sparse_validate(FAKE_H, DEV, 0, 32, NULL), Q4_ERR_INVALID_ARG, "N = 0");
  CHECK_ERR(q4_sparse_validate(FAKE_H, DEV, 20, 32, NULL), Q4_ERR_INVALID_ARG, "N = 20 is not a multiple of 8");
  CHECK_ERR(q4_sparse_validate(FAKE_H, DEV, 8, 100, NULL), Q4_ERR_INVALID_ARG, "K = 100");
  CHECK_ERR(q4_sparse_validate(FAKE_H, DEV_ODD, 8, 32, NULL), Q4_ERR_INVALID_ARG, "mask = 0x10004");
}

static void test_args_unpack(void) {
  CHECK_ERR(q4_sparse_unpack(NULL, DEV, DEV, 8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG,
            "q4_sparse_unpack: handle is NULL");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, NULL, DEV, 8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "qweight is NULL");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV, NULL, 8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "mask is NULL");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV, DEV, 8, 32, NULL, DEV, NULL), Q4_ERR_INVALID_ARG, "codes is NULL");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV, DEV, 8, 32, DEV, NULL, NULL), Q4_ERR_INVALID_ARG, "keep is NULL");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV, DEV, -1, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "N = -1");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV, DEV, 7, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "N = 7");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV, DEV, 8, 33, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "K = 33");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV_ODD, DEV, 8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG,
            "qweight = 0x10004");
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV, DEV_ODD, 8, 32, DEV, DEV, NULL), Q4_ERR_INVALID_ARG, "mask = 0x10004");
  /* codes and keep may have any alignment */
  CHECK_ERR(q4_sparse_unpack(FAKE_H, DEV, DEV, 8, 40, DEV_ODD, DEV_ODD, NULL), Q4_ERR_INVALID_ARG, "K = 40");
}

/* An array written over another (or over an input) is refused before the
** GPU is touched: 8 x 32 weights are 256 bytes of codes and of keep, 64 of
** qweight and 32 of mask. Inputs may share bytes. */
static void test_args_overlap(void) {
  typedef q4_status (*convert_fn)(q4_handle *, const void *, const void *, int, int, void *, void *, void *);
  static const struct {
    convert_fn fn;
    uintptr_t in0, in1, out0, out1;  /* pack: codes, keep, qweight, mask; unpack: qweight, mask, codes, keep */
    const char *want;
  } cases[] = {
      {q4_sparse_pack, 0x100000, 0x200000, 0x1000f0, 0x400000, "q4_sparse_pack: qweight overlaps codes"},
      {q4_sparse_pack, 0x100000, 0x200000, 0x300000, 0x2000f0, "mask overlaps keep"},
      {q4_sparse_pack, 0x100000, 0x200000, 0x300000, 0x300030, "mask overlaps qweight"},
      {q4_sparse_unpack, 0x300000, 0x400000, 0x2fff10, 0x200000, "q4_sparse_unpack: codes overlaps qweight"},
      {q4_sparse_unpack, 0x300000, 0x400000, 0x100000, 0x1000ff, "keep overlaps codes"},
      {q4_sparse_unpack, 0x300000, 0x400000, 0x100000, 0x3fff01, "keep overlaps mask"},
      /* arrays that end where the next begins are apart: were those taken
      ** for an overlap, the error would name the first pair checked */
      {q4_sparse_pack, 0x300050, 0x200000, 0x300000, 0x300040, "mask overlaps codes"},
      {q4_sparse_unpack, 0x300000, 0x100000, 0x100100, 0x100020, "keep overlaps codes"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    CHECK_ERR(cases[i].fn(FAKE_H, (const void *)cases[i].in0, (const void *)cases[i].in1, 8, 32, (void *)cases[i].out0,
                          (void *)cases[i].out1, NULL),
              Q4_ERR_INVALID_ARG, cases[i].want);
}

/* The kernels' source compiles for both architectures the library targets
** most, with every kernel in the cubin and nothing spilled. */
static void test_compile(void) {
  static const char *const kernels[] = {"q4s_check", "q4s_pack", "q4s_validate", "q4s_unpack"};
  static const int archs[] = {80, 90};
  for (int a = 0; a < 2; a++) {
    q4_compiled c;
    q4_status s = q4_nvrtc_compile(q4_sparse_gpu_source, "q4_sparse_gpu", archs[a], &c);
    CHECK_MSG(s == Q4_OK, "sm_%d: %s: %s", archs[a], q4_status_name(s), q4_last_error());
    if (s) continue;
    CHECK_MSG(c.cubin && c.size > 4 && !memcmp(c.cubin, "\x7f" "ELF", 4), "sm_%d: no cubin (%zu bytes)", archs[a],
              c.size);
    for (int i = 0; i < 4; i++)
      CHECK_MSG(memmem(c.cubin, c.size, kernels[i], strlen(kernels[i]) + 1) != NULL, "sm_%d: no %s in the cubin",
                archs[a], kernels[i]);
    CHECK_MSG(c.spill_bytes == 0, "sm_%d: %d bytes spilled", archs[a], c.spill_bytes);
    q4_compiled_free(&c);
  }
}

/* ---- with a GPU: helpers ----------------------------------------------------------- */

#define SENTINEL 0xdeadbeefu
#define SENTINEL8 0xab

/* Device buffers of one problem; `off` shifts codes and keep off 16-byte
** alignment to take the kernels' byte-wise path. */
typedef struct gpu_bufs {
  CUdeviceptr codes_mem, keep_mem, qweight, mask;
  CUdeviceptr codes, keep;
  size_t elems, qw_words, mask_words;
} gpu_bufs;

static int bufs_alloc(q4_handle *h, gpu_bufs *g, int n, int k, int off) {
  memset(g, 0, sizeof *g);
  g->elems = (size_t)n * k;
  g->qw_words = g->elems / 16;
  g->mask_words = g->elems / 32;
  const q4_cuda_api *cu = h->cu;
  if (cu->MemAlloc(&g->codes_mem, g->elems + 16) || cu->MemAlloc(&g->keep_mem, g->elems + 16) ||
      cu->MemAlloc(&g->qweight, g->qw_words * 4) || cu->MemAlloc(&g->mask, g->mask_words * 4))
    return 0;
  g->codes = g->codes_mem + (size_t)off;
  g->keep = g->keep_mem + (size_t)off;
  return 1;
}

static void bufs_free(q4_handle *h, gpu_bufs *g) {
  if (g->codes_mem) h->cu->MemFree(g->codes_mem);
  if (g->keep_mem) h->cu->MemFree(g->keep_mem);
  if (g->qweight) h->cu->MemFree(g->qweight);
  if (g->mask) h->cu->MemFree(g->mask);
  memset(g, 0, sizeof *g);
}

/* A copy from pageable memory may return before its DMA ends, and a
** non-blocking stream does not wait for it: wait for the legacy stream. */
static int upload(q4_handle *h, CUdeviceptr dst, const void *src, size_t bytes) {
  return h->cu->MemcpyHtoD(dst, src, bytes) == CUDA_SUCCESS && h->cu->StreamSynchronize(NULL) == CUDA_SUCCESS;
}

static int download(q4_handle *h, void *dst, CUdeviceptr src, size_t bytes) {
  return h->cu->MemcpyDtoH(dst, src, bytes) == CUDA_SUCCESS;
}

/* Fill qweight and mask with SENTINEL words. */
static int poison_words(q4_handle *h, const gpu_bufs *g) {
  const size_t words = g->qw_words;
  uint32_t *s = malloc(words * 4);
  if (!s) return 0;
  for (size_t i = 0; i < words; i++) s[i] = SENTINEL;
  const int ok = upload(h, g->qweight, s, g->qw_words * 4) && upload(h, g->mask, s, g->mask_words * 4);
  free(s);
  return ok;
}

/* 1 if qweight and mask still hold SENTINEL everywhere. */
static int words_untouched(q4_handle *h, const gpu_bufs *g) {
  uint32_t *s = malloc(g->qw_words * 4);
  int ok = s && download(h, s, g->qweight, g->qw_words * 4);
  for (size_t i = 0; ok && i < g->qw_words; i++) ok = s[i] == SENTINEL;
  ok = ok && download(h, s, g->mask, g->mask_words * 4);
  for (size_t i = 0; ok && i < g->mask_words; i++) ok = s[i] == SENTINEL;
  free(s);
  return ok;
}

/* ---- with a GPU: round trips ------------------------------------------------------- */

/* GPU pack == host pack bit for bit; GPU unpack gives the input back with
** pruned codes 0; the GPU validator accepts the mask. */
static void round_trip(q4_handle *h, int n, int k, int off, CUstream stream, uint64_t seed) {
  const size_t el = (size_t)n * k;
  uint8_t *codes = malloc(el), *keep = malloc(el), *c2 = malloc(el), *k2 = malloc(el);
  uint32_t *qw = malloc(el / 16 * 4), *mask = malloc(el / 32 * 4), *gqw = malloc(el / 16 * 4),
           *gmask = malloc(el / 32 * 4);
  gpu_bufs g = {0};
  if (!codes || !keep || !c2 || !k2 || !qw || !mask || !gqw || !gmask || !bufs_alloc(h, &g, n, k, off)) {
    CHECK_MSG(0, "N=%d K=%d: out of host or device memory", n, k);
    goto out;
  }
  q4s_random_dense(codes, keep, n, k, seed);
  CHECK_OK(q4s_pack(codes, keep, n, k, qw, mask));
  CHECK(upload(h, g.codes, codes, el) && upload(h, g.keep, keep, el) && poison_words(h, &g));

  CHECK_OK(q4_sparse_pack(h, (void *)g.codes, (void *)g.keep, n, k, (void *)g.qweight, (void *)g.mask, stream));
  CHECK(download(h, gqw, g.qweight, el / 16 * 4) && download(h, gmask, g.mask, el / 32 * 4));
  size_t bad_qw = 0, bad_mask = 0;
  for (size_t i = 0; i < el / 16; i++) bad_qw += gqw[i] != qw[i];
  for (size_t i = 0; i < el / 32; i++) bad_mask += gmask[i] != mask[i];
  CHECK_MSG(bad_qw == 0 && bad_mask == 0, "N=%d K=%d off %d: %zu qweight and %zu mask words differ from q4s_pack",
            n, k, off, bad_qw, bad_mask);

  CHECK_OK(q4_sparse_validate(h, (void *)g.mask, n, k, stream));

  /* unpack over a poisoned matrix: every byte must be written */
  memset(c2, SENTINEL8, el);
  CHECK(upload(h, g.codes, c2, el) && upload(h, g.keep, c2, el));
  CHECK_OK(q4_sparse_unpack(h, (void *)g.qweight, (void *)g.mask, n, k, (void *)g.codes, (void *)g.keep, stream));
  CHECK(download(h, c2, g.codes, el) && download(h, k2, g.keep, el));
  size_t bad = 0;
  for (size_t e = 0; e < el; e++) bad += k2[e] != keep[e] || c2[e] != (keep[e] ? codes[e] : 0);
  CHECK_MSG(bad == 0, "N=%d K=%d off %d: %zu elements differ after unpack", n, k, off, bad);
  printf("test_sparse_gpu: N=%d K=%d%s%s: pack, validate, unpack agree with the host\n", n, k,
         off ? " (unaligned codes/keep)" : "", stream ? " (own stream)" : "");
out:
  bufs_free(h, &g);
  free(codes), free(keep), free(c2), free(k2), free(qw), free(mask), free(gqw), free(gmask);
}

/* ---- with a GPU: bad input ------------------------------------------------------------ */

/* The GPU's message names what the host's does: equal from `from` on. */
static void same_message(const char *gpu, const char *host, const char *from) {
  const char *g = strstr(gpu, from), *hm = strstr(host, from);
  CHECK_MSG(g && hm && !strcmp(g, hm), "GPU \"%s\" vs host \"%s\"", gpu, host);
}

enum { EN = 96, EK = 4096 };  /* 128 row blocks */

typedef struct err_case {
  uint8_t *codes, *keep;
  uint32_t *qw, *mask;
  gpu_bufs g;
} err_case;

/* Pack the current codes/keep on the GPU and on the host: both must refuse
** with the same message, containing `want`, and the GPU must write nothing. */
static void pack_refused(q4_handle *h, err_case *c, const char *want) {
  const size_t el = (size_t)EN * EK;
  CHECK(upload(h, c->g.codes, c->codes, el) && upload(h, c->g.keep, c->keep, el) && poison_words(h, &c->g));
  char gpu_msg[1024];
  CHECK_ERR(q4_sparse_pack(h, (void *)c->g.codes, (void *)c->g.keep, EN, EK, (void *)c->g.qweight,
                           (void *)c->g.mask, NULL),
            Q4_ERR_INVALID_ARG, want);
  snprintf(gpu_msg, sizeof gpu_msg, "%s", q4_last_error());
  CHECK_MSG(words_untouched(h, &c->g), "q4_sparse_pack wrote its outputs on \"%s\"", gpu_msg);
  CHECK(q4s_pack(c->codes, c->keep, EN, EK, c->qw, c->mask) == Q4_ERR_INVALID_ARG);
  same_message(gpu_msg, q4_last_error(), want);
}

/* Drop (more = 0) or add (more = 1) one kept row of block (b, col). */
static void bend_block(uint8_t *keep, int b, int col, int more) {
  uint8_t *kp = keep + (size_t)col * EK + 32 * b;
  for (int j = 0; j < 32; j++)
    if (kp[j] == !more) {
      kp[j] = (uint8_t)more;
      return;
    }
}

static void test_pack_errors(q4_handle *h) {
  const size_t el = (size_t)EN * EK;
  err_case c = {malloc(el), malloc(el), malloc(el / 16 * 4), malloc(el / 32 * 4)};
  if (!c.codes || !c.keep || !c.qw || !c.mask || !bufs_alloc(h, &c.g, EN, EK, 0)) {
    CHECK_MSG(0, "out of host or device memory");
    goto out;
  }
  /* 15 and 17 kept in block 5 (rows 160..191) of column 37 */
  q4s_random_dense(c.codes, c.keep, EN, EK, 11);
  bend_block(c.keep, 5, 37, 0);
  pack_refused(h, &c, "row block 5 (rows 160..191), column 37: 15 rows kept");
  q4s_random_dense(c.codes, c.keep, EN, EK, 11);
  bend_block(c.keep, 5, 37, 1);
  pack_refused(h, &c, "row block 5 (rows 160..191), column 37: 17 rows kept");
  /* the first bad block in (row block, column) order: (5, 37) before (9, 2) and (5, 90) */
  bend_block(c.keep, 9, 2, 0);
  bend_block(c.keep, 5, 90, 0);
  pack_refused(h, &c, "row block 5 (rows 160..191), column 37: 17 rows kept");
  /* a whole block pruned, one kept whole, in the last block of the last column */
  q4s_random_dense(c.codes, c.keep, EN, EK, 12);
  memset(c.keep + (size_t)(EN - 1) * EK + EK - 32, 0, 32);
  pack_refused(h, &c, "row block 127 (rows 4064..4095), column 95: 0 rows kept");
  memset(c.keep + (size_t)(EN - 1) * EK + EK - 32, 1, 32);
  pack_refused(h, &c, "row block 127 (rows 4064..4095), column 95: 32 rows kept");

  /* bad elements come before bad blocks, and in (n, k) order */
  q4s_random_dense(c.codes, c.keep, EN, EK, 13);
  c.codes[(size_t)50 * EK + 777] = 16;
  pack_refused(h, &c, "code at (n=50, k=777) is 16");
  bend_block(c.keep, 0, 0, 0);  /* an earlier bad block does not matter */
  pack_refused(h, &c, "code at (n=50, k=777) is 16");
  c.keep[(size_t)3 * EK + 100] = 2;  /* keep value 2, earlier in (n, k) order */
  pack_refused(h, &c, "keep-mask value at (n=3, k=100) is 2");
  c.codes[(size_t)3 * EK + 100] = 255;  /* a bad code and keep at one element: the code */
  pack_refused(h, &c, "code at (n=3, k=100) is 255");
  /* keep 2 beside 15 ones sums to 17 - 1 + 2 = 16: caught as a value, not passed */
  q4s_random_dense(c.codes, c.keep, EN, EK, 14);
  bend_block(c.keep, 7, 60, 0);
  {
    uint8_t *kp = c.keep + (size_t)60 * EK + 32 * 7;
    int j = 0;
    while (!kp[j]) j++;
    kp[j] = 2;
    char want[96];
    snprintf(want, sizeof want, "keep-mask value at (n=60, k=%d) is 2", 32 * 7 + j);
    pack_refused(h, &c, want);
  }
  /* a code above 15 at a pruned position is still refused */
  q4s_random_dense(c.codes, c.keep, EN, EK, 15);
  {
    int j = 0;
    while (c.keep[(size_t)90 * EK + 4000 + j]) j++;
    c.codes[(size_t)90 * EK + 4000 + j] = 16;
    char want[96];
    snprintf(want, sizeof want, "code at (n=90, k=%d) is 16", 4000 + j);
    pack_refused(h, &c, want);
  }
out:
  bufs_free(h, &c.g);
  free(c.codes), free(c.keep), free(c.qw), free(c.mask);
}

/* Masks with a word of 15 and 17 bits: validate and unpack refuse them,
** naming the word as q4s_validate does, and unpack writes nothing. */
static void test_mask_errors(q4_handle *h) {
  const size_t el = (size_t)EN * EK, words = el / 32;
  uint8_t *codes = malloc(el), *keep = malloc(el), *out8 = malloc(el);
  uint32_t *qw = malloc(el / 16 * 4), *mask = malloc(words * 4);
  gpu_bufs g = {0};
  if (!codes || !keep || !out8 || !qw || !mask || !bufs_alloc(h, &g, EN, EK, 0)) {
    CHECK_MSG(0, "out of host or device memory");
    goto out;
  }
  q4s_random_dense(codes, keep, EN, EK, 21);
  CHECK_OK(q4s_pack(codes, keep, EN, EK, qw, mask));
  CHECK(upload(h, g.qweight, qw, el / 16 * 4));
  const size_t w = (size_t)5 * EN + 37;  /* word (5, 37) */
  const uint32_t good = mask[w], lowest_set = good & (0u - good), lowest_clear = ~good & (0u - ~good);
  static const char *const bits[2] = {"15 bits set", "17 bits set"};
  for (int t = 0; t < 2; t++) {
    mask[w] = t ? good | lowest_clear : good & ~lowest_set;
    CHECK(upload(h, g.mask, mask, words * 4));
    char want[128];
    snprintf(want, sizeof want, "row block 5 (rows 160..191), column 37 is 0x%08x with %s", mask[w], bits[t]);
    CHECK_ERR(q4_sparse_validate(h, (void *)g.mask, EN, EK, NULL), Q4_ERR_INVALID_ARG, want);
    char gpu_msg[1024];
    snprintf(gpu_msg, sizeof gpu_msg, "%s", q4_last_error());
    CHECK(q4s_validate(mask, EN, EK) == Q4_ERR_INVALID_ARG);
    same_message(gpu_msg, q4_last_error(), "mask word at row block");

    memset(out8, SENTINEL8, el);
    CHECK(upload(h, g.codes, out8, el) && upload(h, g.keep, out8, el));
    CHECK_ERR(q4_sparse_unpack(h, (void *)g.qweight, (void *)g.mask, EN, EK, (void *)g.codes, (void *)g.keep, NULL),
              Q4_ERR_INVALID_ARG, want);
    size_t written = 0;
    CHECK(download(h, out8, g.codes, el));
    for (size_t e = 0; e < el; e++) written += out8[e] != SENTINEL8;
    CHECK(download(h, out8, g.keep, el));
    for (size_t e = 0; e < el; e++) written += out8[e] != SENTINEL8;
    CHECK_MSG(written == 0, "q4_sparse_unpack wrote %zu bytes on a bad mask", written);
  }
  /* the first bad word in (row block, column) order is named */
  mask[(size_t)100 * EN + 0] = 0;
  mask[(size_t)5 * EN + 90] = 0xffffffffu;
  CHECK(upload(h, g.mask, mask, words * 4));
  CHECK_ERR(q4_sparse_validate(h, (void *)g.mask, EN, EK, NULL), Q4_ERR_INVALID_ARG,
            "row block 5 (rows 160..191), column 37");
  mask[w] = good;
  CHECK(upload(h, g.mask, mask, words * 4));
  CHECK_ERR(q4_sparse_validate(h, (void *)g.mask, EN, EK, NULL), Q4_ERR_INVALID_ARG,
            "row block 5 (rows 160..191), column 90 is 0xffffffff with 32 bits set");
  mask[(size_t)5 * EN + 90] = 0x0000ffffu;
  CHECK(upload(h, g.mask, mask, words * 4));
  CHECK_ERR(q4_sparse_validate(h, (void *)g.mask, EN, EK, NULL), Q4_ERR_INVALID_ARG,
            "row block 100 (rows 3200..3231), column 0 is 0x00000000 with 0 bits set");
  mask[(size_t)100 * EN + 0] = 0xaaaaaaaau;
  CHECK(upload(h, g.mask, mask, words * 4));
  CHECK_OK(q4_sparse_validate(h, (void *)g.mask, EN, EK, NULL));
out:
  bufs_free(h, &g);
  free(codes), free(keep), free(out8), free(qw), free(mask);
}

/* A second handle on the same database compiles nothing: the module's
** cubin comes from the cache. */
static void test_cache(const char *db) {
  q4_handle *h = NULL;
  CHECK_OK(q4_create(0, db, &h));
  if (!h) return;
  CHECK_ERR(q4_sparse_validate(h, DEV_ODD, 8, 32, NULL), Q4_ERR_INVALID_ARG, "16-byte");  /* loads nothing */
  CUdeviceptr m = 0;
  uint32_t words[8];
  for (int i = 0; i < 8; i++) words[i] = 0x33333333u;  /* 16 bits each */
  if (q4_ctx_push(h) == Q4_OK) {
    CHECK(h->cu->MemAlloc(&m, sizeof words) == CUDA_SUCCESS && upload(h, m, words, sizeof words));
    CHECK_OK(q4_sparse_validate(h, (void *)m, 8, 32, NULL));
    CHECK_MSG(h->nvrtc_runs == 0, "a warm handle ran NVRTC %d times", h->nvrtc_runs);
    CHECK(h->sparse_mod != NULL);
    if (m) h->cu->MemFree(m);
    q4_ctx_pop(h);
  }
  q4_destroy(h);
}

static void test_gpu(void) {
  q4_handle *h = q4test_gpu("test_sparse_gpu");
  if (!h) return;
  printf("test_sparse_gpu: on %s (sm_%d)\n", h->info.name, h->arch);
  if (q4_ctx_push(h) != Q4_OK) {
    CHECK_MSG(0, "cuCtxPushCurrent: %s", q4_last_error());
    q4_destroy(h);
    return;
  }
  round_trip(h, 96, 4096, 0, NULL, 1);
  CHECK_MSG(h->nvrtc_runs == 1, "a fresh database: %d NVRTC runs, want 1", h->nvrtc_runs);
  round_trip(h, 4096, 4096, 0, NULL, 2);
  round_trip(h, 96, 4096, 1, NULL, 3);
  round_trip(h, 8, 32, 3, NULL, 4);
  round_trip(h, 24, 96, 0, NULL, 5);
  CUstream stream = NULL;
  CHECK(h->cu->StreamCreate(&stream, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS);
  if (stream) {
    round_trip(h, 4096, 4096, 0, stream, 6);
    h->cu->StreamDestroy(stream);
  }
  CHECK_MSG(h->nvrtc_runs == 1, "the module was compiled %d times", h->nvrtc_runs);
  test_pack_errors(h);
  test_mask_errors(h);
  q4_ctx_pop(h);
  q4_destroy(h);
  test_cache(q4test_db);
}

int main(void) {
  make_tmpdir("sparse_gpu");
  test_args_pack();
  test_args_validate();
  test_args_unpack();
  test_args_overlap();
  test_compile();
  test_gpu();
  remove_tmpdir();
  return q4test_done("test_sparse_gpu");
}
