/*
** q4_sparse_gpu.c -- the 16:32 structured-sparse format (q4s) on the GPU:
** packing a dense code matrix and keep-mask, validating a mask, unpacking.
** The layout is in q4_sparse.h and docs/FORMATS.md; the results are bit for
** bit those of q4s_pack / q4s_validate / q4s_unpack on the host, errors
** included (the same first bad element or block, the same kind of message).
*/
#include "q4_sparse_gpu.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "q4_error.h"
#include "q4_handle.h"
#include "q4_module.h"

/* The unit of work is one (row block b, column n): its 32 bytes of codes
** and of keep lie at n*K + 32b, its mask word at b*N + n and its two qweight
** words at 2b*N + n and (2b+1)*N + n. A warp takes 8 columns x 4 row blocks
** (unit_of), so that both the byte matrices and the word rows are read and
** written in contiguous runs. Every kernel loops with a grid stride. */
const char q4_sparse_gpu_source[] =
    "typedef unsigned int u32;\n"
    "typedef unsigned long long u64;\n"
    "\n"
    "// 32 bytes at p as 8 little-endian words; vec: p is 16-byte aligned\n"
    "__device__ __forceinline__ void load32(const unsigned char *p, bool vec, u32 w[8]) {\n"
    "  if (vec) {\n"
    "    const uint4 a = ((const uint4 *)p)[0], c = ((const uint4 *)p)[1];\n"
    "    w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;\n"
    "    w[4] = c.x; w[5] = c.y; w[6] = c.z; w[7] = c.w;\n"
    "  } else {\n"
    "#pragma unroll\n"
    "    for (int i = 0; i < 8; ++i)\n"
    "      w[i] = p[4 * i] | (u32)p[4 * i + 1] << 8 | (u32)p[4 * i + 2] << 16 | (u32)p[4 * i + 3] << 24;\n"
    "  }\n"
    "}\n"
    "\n"
    "__device__ __forceinline__ void store32(unsigned char *p, bool vec, const u32 w[8]) {\n"
    "  if (vec) {\n"
    "    ((uint4 *)p)[0] = make_uint4(w[0], w[1], w[2], w[3]);\n"
    "    ((uint4 *)p)[1] = make_uint4(w[4], w[5], w[6], w[7]);\n"
    "  } else {\n"
    "#pragma unroll\n"
    "    for (int j = 0; j < 32; ++j) p[j] = (unsigned char)(w[j >> 2] >> (8 * (j & 3)));\n"
    "  }\n"
    "}\n"
    "\n"
    "// byte j of 32 held as words (j a constant after unrolling: no local memory)\n"
    "__device__ __forceinline__ u32 byte_of(const u32 w[8], int j) { return (w[j >> 2] >> (8 * (j & 3))) & 255u; }\n"
    "\n"
    "// Thread slot s -> unit (b, n). A warp takes 8 columns x 4 row blocks: it\n"
    "// reads 128 contiguous bytes of each column and writes 32 contiguous\n"
    "// bytes of each of 4 word rows. Slots past the last row block return false.\n"
    "__device__ __forceinline__ bool unit_of(u64 s, int N, int K, u64 &b, u64 &n) {\n"
    "  const u64 t = s / 32, l = s % 32, tiles_n = (u64)(N / 8);\n"
    "  n = t % tiles_n * 8 + l / 4;\n"
    "  b = t / tiles_n * 4 + l % 4;\n"
    "  return b < (u64)(K / 32);\n"
    "}\n"
    "\n"
    "// f(b, u, base) for every unit (row block b, column n) of the grid, a\n"
    "// grid-stride loop over the slots: u = b*N + n is the unit's mask word,\n"
    "// base = n*K + 32b its first byte in the N x K byte matrices.\n"
    "template <typename F> __device__ __forceinline__ void for_each_unit(int N, int K, F f) {\n"
    "  const u64 slots = (u64)(N / 8) * (u64)((K / 32 + 3) / 4) * 32;\n"
    "  for (u64 s = blockIdx.x * (u64)blockDim.x + threadIdx.x; s < slots; s += (u64)gridDim.x * blockDim.x) {\n"
    "    u64 b, n;\n"
    "    if (unit_of(s, N, K, b, n)) f(b, b * (u64)N + n, n * (u64)K + 32 * b);\n"
    "  }\n"
    "}\n"
    "\n"
    "// first[0]: the first bad element in (n, k) order, as 2 * (n*K + k) plus 0\n"
    "// for a code > 15, 1 for a keep value > 1 (the code wins at one element,\n"
    "// as on the host); first[1]: the first block in (row block, column) order,\n"
    "// as b*N + n, that keeps other than 16 rows. Both start at ~0.\n"
    "extern \"C\" __global__ void q4s_check(const unsigned char *codes, const unsigned char *keep, int N, int K,\n"
    "                                      u64 *first) {\n"
    "  const bool vec = (((u64)codes | (u64)keep) & 15) == 0;\n"
    "  for_each_unit(N, K, [&](u64 b, u64 u, u64 base) {\n"
    "    u32 c[8], k[8], bad = 0;\n"
    "    int kept = 0;\n"
    "    load32(codes + base, vec, c);\n"
    "    load32(keep + base, vec, k);\n"
    "#pragma unroll\n"
    "    for (int i = 0; i < 8; ++i) {\n"
    "      bad |= (c[i] & 0xf0f0f0f0u) | (k[i] & 0xfefefefeu);\n"
    "      kept += __popc(k[i]);  // bytes of 0 or 1: one bit each\n"
    "    }\n"
    "    if (bad) {  // rare: find the first bad byte, re-reading memory\n"
    "      for (int j = 0; j < 32; ++j) {\n"
    "        const unsigned cj = codes[base + j], kj = keep[base + j];\n"
    "        if (cj > 15 || kj > 1) {\n"
    "          atomicMin(&first[0], 2 * (base + j) + (cj > 15 ? 0 : 1));\n"
    "          break;\n"
    "        }\n"
    "      }\n"
    "    } else if (kept != 16) {\n"
    "      atomicMin(&first[1], u);\n"
    "    }\n"
    "  });\n"
    "}\n"
    "\n"
    "// Input already checked by q4s_check: codes 0..15, 16 kept per block.\n"
    "extern \"C\" __global__ void q4s_pack(const unsigned char *codes, const unsigned char *keep, int N, int K,\n"
    "                                     u32 *qweight, u32 *mask) {\n"
    "  const bool vec = (((u64)codes | (u64)keep) & 15) == 0;\n"
    "  for_each_unit(N, K, [&](u64 b, u64 u, u64 base) {\n"
    "    u32 c[8], k[8], m = 0;\n"
    "    load32(codes + base, vec, c);\n"
    "    load32(keep + base, vec, k);\n"
    "    u64 packed = 0;  // kept code i in bits 4i..4i+3\n"
    "    int i = 0;\n"
    "#pragma unroll\n"
    "    for (int j = 0; j < 32; ++j) {\n"
    "      if (!byte_of(k, j)) continue;\n"
    "      m |= 1u << j;\n"
    "      packed |= (u64)byte_of(c, j) << (4 * i);\n"
    "      ++i;\n"
    "    }\n"
    "    mask[u] = m;\n"
    "    qweight[u + b * (u64)N] = (u32)packed;  // word (2b, n)\n"
    "    qweight[u + (b + 1) * (u64)N] = (u32)(packed >> 32);  // word (2b + 1, n)\n"
    "  });\n"
    "}\n"
    "\n"
    "// first[0]: the index of the first mask word without exactly 16 bits set.\n"
    "extern \"C\" __global__ void q4s_validate(const u32 *mask, u64 words, u64 *first) {\n"
    "  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < words; i += (u64)gridDim.x * blockDim.x)\n"
    "    if (__popc(mask[i]) != 16) atomicMin(&first[0], i);\n"
    "}\n"
    "\n"
    "// Mask already checked by q4s_validate: 16 bits in every word.\n"
    "extern \"C\" __global__ void q4s_unpack(const u32 *qweight, const u32 *mask, int N, int K, unsigned char *codes,\n"
    "                                       unsigned char *keep) {\n"
    "  const bool vec = (((u64)codes | (u64)keep) & 15) == 0;\n"
    "  for_each_unit(N, K, [&](u64 b, u64 u, u64 base) {\n"
    "    const u32 m = mask[u];\n"
    "    const u64 packed = qweight[u + b * (u64)N] | (u64)qweight[u + (b + 1) * (u64)N] << 32;\n"
    "    u32 c[8] = {0, 0, 0, 0, 0, 0, 0, 0}, k[8] = {0, 0, 0, 0, 0, 0, 0, 0};\n"
    "    int i = 0;\n"
    "#pragma unroll\n"
    "    for (int j = 0; j < 32; ++j) {\n"
    "      if (!((m >> j) & 1u)) continue;  // pruned: code 0, keep 0\n"
    "      k[j >> 2] |= 1u << (8 * (j & 3));\n"
    "      c[j >> 2] |= (u32)((packed >> (4 * i)) & 15u) << (8 * (j & 3));\n"
    "      ++i;\n"
    "    }\n"
    "    store32(codes + base, vec, c);\n"
    "    store32(keep + base, vec, k);\n"
    "  });\n"
    "}\n";

/* The module's kernels, in the order of h->sparse_fn. */
enum { FN_CHECK, FN_PACK, FN_VALIDATE, FN_UNPACK, FN_COUNT };
static const char *const fn_names[FN_COUNT] = {"q4s_check", "q4s_pack", "q4s_validate", "q4s_unpack"};
_Static_assert(FN_COUNT == sizeof ((q4_handle *)0)->sparse_fn / sizeof(CUfunction),
               "q4_handle.sparse_fn holds one function per kernel");

#define NONE UINT64_MAX  /* scratch value: nothing bad found */
#define THREADS 256

/* ---- arguments ------------------------------------------------------------ */

static q4_status check_sizes(const char *fn, int n, int k) {
  if (n <= 0) return q4_err(Q4_ERR_INVALID_ARG, "%s: N = %d; it must be positive", fn, n);
  if (n % 8)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: N = %d is not a multiple of 8 (q4_weights_check asks the same of weights)",
                  fn, n);
  if (k <= 0 || k % 32)
    return q4_err(Q4_ERR_INVALID_ARG,
                  "%s: K = %d is not a positive multiple of 32 (16:32 sparsity works on blocks of 32 rows)", fn, k);
  return Q4_OK;
}

/* qweight and mask are what q4_matmul's kernels will read: q4_weights_check
** asks 16-byte alignment of both. codes and keep may have any alignment. */
static q4_status check_align16(const char *fn, const char *name, const void *p) {
  if ((uintptr_t)p % 16)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: %s = %p is not 16-byte aligned", fn, name, p);
  return Q4_OK;
}

/* ---- the module, loaded once per handle ------------------------------------- */

/* The kernels, compiled (or taken from the cubin cache) on first use. The
** caller holds the context, not the lock: q4_module_load takes it for the
** database, so two threads may both load the module; the first to store it
** wins and the other unloads its copy. */
static q4_status sparse_functions(q4_handle *h, CUfunction fn[FN_COUNT]) {
  pthread_mutex_lock(&h->lock);
  const int loaded = h->sparse_mod != NULL;
  if (loaded) memcpy(fn, h->sparse_fn, sizeof h->sparse_fn);
  pthread_mutex_unlock(&h->lock);
  if (loaded) return Q4_OK;
  CUmodule mod = NULL;
  q4_status st = q4_module_load(h, q4_sparse_gpu_source, "q4_sparse_gpu", &mod);
  if (st) return st;
  CUfunction f[FN_COUNT];
  for (int i = 0; i < FN_COUNT && !st; i++) {
    char what[64];
    snprintf(what, sizeof what, "finding kernel %s", fn_names[i]);
    st = q4_cuda_check(h->cu->ModuleGetFunction(&f[i], mod, fn_names[i]), what);
  }
  if (st) {
    h->cu->ModuleUnload(mod);
    return st;
  }
  pthread_mutex_lock(&h->lock);
  if (!h->sparse_mod) {
    h->sparse_mod = mod;
    memcpy(h->sparse_fn, f, sizeof f);
    mod = NULL;
  }
  memcpy(fn, h->sparse_fn, sizeof h->sparse_fn);
  pthread_mutex_unlock(&h->lock);
  if (mod) h->cu->ModuleUnload(mod);
  return Q4_OK;
}

/* ---- launches ---------------------------------------------------------------- */

/* The thread slots of the per-unit kernels, as for_each_unit counts them:
** warps of 8 columns x 4 row blocks, the last row of warps partly idle when
** K/32 is not a multiple of 4. */
static uint64_t unit_slots(int n, int k) { return (uint64_t)(n / 8) * (uint64_t)((k / 32 + 3) / 4) * 32; }

/* A grid-stride launch over `units` threads' worth of work: enough blocks
** to fill the GPU, no more (the kernels loop). */
static q4_status launch(q4_handle *h, CUfunction f, uint64_t units, CUstream stream, void **args) {
  uint64_t blocks = (units + THREADS - 1) / THREADS;
  const uint64_t cap = (uint64_t)(h->sms > 0 ? h->sms : 1) * 32;
  if (blocks > cap) blocks = cap;
  if (blocks == 0) blocks = 1;
  return q4_cuda_check(h->cu->LaunchKernel(f, (unsigned)blocks, 1, 1, THREADS, 1, 1, 0, stream, args, NULL),
                       "cuLaunchKernel");
}

/* Scratch for `count` first-bad indices, set to NONE on `stream`. */
static q4_status scratch_alloc(q4_handle *h, size_t count, CUstream stream, CUdeviceptr *out) {
  *out = 0;
  q4_status st = q4_cuda_check(h->cu->MemAlloc(out, count * sizeof(uint64_t)), "allocating scratch");
  if (!st) st = q4_cuda_check(h->cu->MemsetD8Async(*out, 0xff, count * sizeof(uint64_t), stream), "cuMemsetD8Async");
  return st;
}

/* Wait for `stream`, then read the scratch back. cuMemcpyDtoH alone would
** not wait for a non-blocking stream. */
static q4_status scratch_read(q4_handle *h, CUdeviceptr scratch, size_t count, CUstream stream, uint64_t *out) {
  q4_status st = q4_cuda_check(h->cu->StreamSynchronize(stream), "cuStreamSynchronize");
  if (!st) st = q4_cuda_check(h->cu->MemcpyDtoH(out, scratch, count * sizeof(uint64_t)), "reading the check's result");
  return st;
}

/* ---- validation on the GPU ----------------------------------------------------- */

/* Q4_OK if every mask word has 16 bits set, else Q4_ERR_INVALID_ARG naming
** the first bad word in (row block, column) order, as q4s_validate does. */
static q4_status validate_mask(q4_handle *h, const CUfunction fn[FN_COUNT], const char *name, CUdeviceptr mask,
                               int n, int k, CUstream stream) {
  CUdeviceptr scratch = 0;
  uint64_t words = (uint64_t)n * (uint64_t)(k / 32), first = NONE;
  void *args[] = {&mask, &words, &scratch};
  q4_status st = scratch_alloc(h, 1, stream, &scratch);
  if (!st) st = launch(h, fn[FN_VALIDATE], words, stream, args);
  if (!st) st = scratch_read(h, scratch, 1, stream, &first);
  if (scratch) h->cu->MemFree(scratch);
  if (st || first == NONE) return st;
  uint32_t word = 0;
  if ((st = q4_cuda_check(h->cu->MemcpyDtoH(&word, mask + first * 4, 4), "reading the bad mask word"))) return st;
  const int b = (int)(first / (uint64_t)n), c = (int)(first % (uint64_t)n);
  return q4_err(Q4_ERR_INVALID_ARG,
                "%s: mask word at row block %d (rows %d..%d), column %d is 0x%08x with %d bits set; "
                "the 16:32 format keeps exactly 16 rows of every block",
                name, b, 32 * b, 32 * b + 31, c, (unsigned)word, __builtin_popcount(word));
}

/* The message for a bad element found by q4s_check (key 2e + kind). */
static q4_status bad_element(q4_handle *h, CUdeviceptr codes, CUdeviceptr keep, int k, uint64_t key) {
  const uint64_t e = key / 2;
  const int is_keep = (int)(key % 2);
  uint8_t v = 0;
  q4_status st = q4_cuda_check(h->cu->MemcpyDtoH(&v, (is_keep ? keep : codes) + e, 1), "reading the bad element");
  if (st) return st;
  const int row = (int)(e % (uint64_t)k), col = (int)(e / (uint64_t)k);
  if (is_keep)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_sparse_pack: keep-mask value at (n=%d, k=%d) is %u; it must be 0 or 1", col,
                  row, v);
  return q4_err(Q4_ERR_INVALID_ARG, "q4_sparse_pack: code at (n=%d, k=%d) is %u; 4-bit codes are 0..15", col, row, v);
}

/* The message for unit u = (b, n) found by q4s_check keeping other than 16. */
static q4_status bad_block(q4_handle *h, CUdeviceptr keep, int n, int k, uint64_t u) {
  const int b = (int)(u / (uint64_t)n), c = (int)(u % (uint64_t)n);
  uint8_t rows[32];
  q4_status st = q4_cuda_check(h->cu->MemcpyDtoH(rows, keep + (size_t)c * k + 32 * (size_t)b, 32),
                               "reading the bad block");
  if (st) return st;
  int kept = 0;
  for (int j = 0; j < 32; j++) kept += rows[j];
  return q4_err(Q4_ERR_INVALID_ARG,
                "q4_sparse_pack: keep-mask breaks the 16-of-32 rule at row block %d (rows %d..%d), column %d: "
                "%d rows kept; every block of 32 rows of a column must keep exactly 16",
                b, 32 * b, 32 * b + 31, c, kept);
}

/* Codes 0..15 and keep values 0/1 everywhere (first bad element in (n, k)
** order), then 16 kept in every block (first in (row block, column) order):
** the checks and the order of q4s_pack. */
static q4_status check_dense(q4_handle *h, const CUfunction fn[FN_COUNT], CUdeviceptr codes, CUdeviceptr keep,
                             int n, int k, CUstream stream) {
  CUdeviceptr scratch = 0;
  uint64_t first[2] = {NONE, NONE};
  int nn = n, kk = k;
  void *args[] = {&codes, &keep, &nn, &kk, &scratch};
  q4_status st = scratch_alloc(h, 2, stream, &scratch);
  if (!st) st = launch(h, fn[FN_CHECK], unit_slots(n, k), stream, args);
  if (!st) st = scratch_read(h, scratch, 2, stream, first);
  if (scratch) h->cu->MemFree(scratch);
  if (st) return st;
  if (first[0] != NONE) return bad_element(h, codes, keep, k, first[0]);
  if (first[1] != NONE) return bad_block(h, keep, n, k, first[1]);
  return Q4_OK;
}

/* ---- the public functions ------------------------------------------------------ */

/* Push the context and get the kernels; on success the caller pops. */
static q4_status enter(q4_handle *h, CUfunction fn[FN_COUNT]) {
  q4_status st = q4_ctx_push(h);
  if (st) return st;
  if ((st = sparse_functions(h, fn))) q4_ctx_pop(h);
  return st;
}

/* The conversion kernel `f` over every (row block, column) with arguments
** (in0, in1, N, K, out0, out1), then wait for it. */
static q4_status convert(q4_handle *h, CUfunction f, CUdeviceptr in0, CUdeviceptr in1, int n, int k,
                         CUdeviceptr out0, CUdeviceptr out1, CUstream stream) {
  void *args[] = {&in0, &in1, &n, &k, &out0, &out1};
  q4_status st = launch(h, f, unit_slots(n, k), stream, args);
  if (!st) st = q4_cuda_check(h->cu->StreamSynchronize(stream), "cuStreamSynchronize");
  return st;
}

/* The arrays of the public functions, in their names' order: the two word
** arrays of q4s, then the two byte matrices. */
static const char *const ARRAY_NAMES[] = {"qweight", "mask", "codes", "keep"};

/* Bytes of array i of ARRAY_NAMES for N x K weights: qweight and mask as
** q4s weights have them, a byte an element of codes and keep. */
static size_t array_bytes(int i, int n, int k) {
  const q4_shape s = {Q4_FORMAT_Q4S, n, k, k, 0};
  const q4_array_bytes a = q4_shape_arrays(&s);
  return i == 0 ? a.qweight : i == 1 ? a.mask : (size_t)n * (size_t)k;
}

/* What every public function checks before it touches the GPU: the handle,
** its device pointers (ptrs[i], named ARRAY_NAMES[i], for each bit i of
** `taken`), N and K, 16-byte alignment of the word arrays, and that no
** array it writes (bit i of `written`) shares a byte with another. */
static q4_status check_args(const char *fn, const q4_handle *h, const void *const ptrs[4], unsigned taken,
                            unsigned written, int n, int k) {
  q4_err_clear();
  if (!h) return q4_err(Q4_ERR_INVALID_ARG, "%s: handle is NULL", fn);
  for (int i = 0; i < 4; i++)
    if ((taken >> i & 1u) && !ptrs[i]) return q4_err(Q4_ERR_INVALID_ARG, "%s: %s is NULL", fn, ARRAY_NAMES[i]);
  q4_status st = check_sizes(fn, n, k);
  for (int i = 0; !st && i < 2; i++)
    if (taken >> i & 1u) st = check_align16(fn, ARRAY_NAMES[i], ptrs[i]);
  /* each written array against every other taken one; two written ones once */
  for (int i = 0; !st && i < 4; i++)
    for (int j = 0; !st && j < 4; j++)
      if (i != j && (written >> i & 1u) && (taken >> j & 1u) && (j < i || !(written >> j & 1u)) &&
          q4_ranges_overlap(ptrs[i], array_bytes(i, n, k), ptrs[j], array_bytes(j, n, k)))
        st = q4_err(Q4_ERR_INVALID_ARG, "%s: %s overlaps %s (%zu and %zu bytes from %p and %p)", fn,
                    ARRAY_NAMES[i], ARRAY_NAMES[j], array_bytes(i, n, k), array_bytes(j, n, k), ptrs[i], ptrs[j]);
  return st;
}

q4_status q4_sparse_pack(q4_handle *h, const void *codes, const void *keep, int n, int k, void *qweight, void *mask,
                         void *stream) {
  const void *const ptrs[] = {qweight, mask, codes, keep};
  q4_status st = check_args("q4_sparse_pack", h, ptrs, 0xfu, 0x3u, n, k);
  if (st) return st;
  CUfunction fn[FN_COUNT];
  if ((st = enter(h, fn))) return st;
  const CUdeviceptr c = (CUdeviceptr)codes, kp = (CUdeviceptr)keep;
  st = check_dense(h, fn, c, kp, n, k, (CUstream)stream);
  if (!st) st = convert(h, fn[FN_PACK], c, kp, n, k, (CUdeviceptr)qweight, (CUdeviceptr)mask, (CUstream)stream);
  q4_ctx_pop(h);
  return st;
}

q4_status q4_sparse_validate(q4_handle *h, const void *mask, int n, int k, void *stream) {
  static const char fn_name[] = "q4_sparse_validate";
  const void *const ptrs[] = {NULL, mask, NULL, NULL};
  q4_status st = check_args(fn_name, h, ptrs, 0x2u, 0, n, k);
  if (st) return st;
  CUfunction fn[FN_COUNT];
  if ((st = enter(h, fn))) return st;
  st = validate_mask(h, fn, fn_name, (CUdeviceptr)mask, n, k, (CUstream)stream);
  q4_ctx_pop(h);
  return st;
}

q4_status q4_sparse_unpack(q4_handle *h, const void *qweight, const void *mask, int n, int k, void *codes, void *keep,
                           void *stream) {
  static const char fn_name[] = "q4_sparse_unpack";
  const void *const ptrs[] = {qweight, mask, codes, keep};
  q4_status st = check_args(fn_name, h, ptrs, 0xfu, 0xcu, n, k);
  if (st) return st;
  CUfunction fn[FN_COUNT];
  if ((st = enter(h, fn))) return st;
  /* a word with other than 16 bits would index past its block's two words */
  st = validate_mask(h, fn, fn_name, (CUdeviceptr)mask, n, k, (CUstream)stream);
  if (!st)
    st = convert(h, fn[FN_UNPACK], (CUdeviceptr)qweight, (CUdeviceptr)mask, n, k, (CUdeviceptr)codes,
                 (CUdeviceptr)keep, (CUstream)stream);
  q4_ctx_pop(h);
  return st;
}
