-- q4_wmma: int4 matrix product for any M on the tensor cores through
-- nvcuda::wmma 16x16x16 (fp16 in, fp32 accumulate).
--
-- Each block computes a BLOCK_M x BLOCK_N tile of y. Tiles of x and of the
-- packed codes arrive in shared memory through a STAGES-deep cp.async
-- pipeline; each k-step the block unpacks its BLOCK_K x BLOCK_N codes once
-- into an fp16 tile (k contiguous, so one thread writes one 16-byte row per
-- word) and every warp multiplies its (BLOCK_M / WARPS_M) x
-- (BLOCK_N / WARPS_N) part from there.
-- Act-order weights: x is gathered through perm once, by C.gather_x's
-- kernel ahead of this one, so the kernel reads it as for any weights.
local C = import("_q4common")

local T = {
  name = "q4_wmma",
  formats = { "q4" },
  priority = 20,
  params = {
    { "BLOCK_M", { 32, 64, 128 } },
    { "BLOCK_N", { 64, 128, 256 } },
    { "BLOCK_K", { 32, 64 } },
    { "WARPS_M", { 1, 2, 4 } },
    { "WARPS_N", { 2, 4 } },
    { "STAGES",  { 2, 3, 4 } },
    { "SPLIT_K", { 1, 2, 4 } },
  },
}

local PAD = 8  -- halves of padding per shared row: rows 16 bytes apart in bank order

local function smem_bytes(p)
  local lda, ldb = p.BLOCK_K + PAD, p.BLOCK_K + PAD
  local pipe = p.STAGES * (p.BLOCK_M * lda * 2 + (p.BLOCK_K // 8) * p.BLOCK_N * 4)
  local main = pipe + p.BLOCK_N * ldb * 2
  local epilogue = p.BLOCK_M * (p.BLOCK_N + 4) * 4
  return math.max(main, epilogue)
end

function T.meta(p, s)
  return {
    threads = 32 * p.WARPS_M * p.WARPS_N,
    smem = smem_bytes(p),
    tile_m = p.BLOCK_M, tile_n = p.BLOCK_N, split_k = p.SPLIT_K,
    -- below half a tile of rows the decode kernels win; don't time these
    m_min = p.BLOCK_M // 2 + 1,
    m_max = 1 << 30,
  }
end

function T.check(p, s)
  if s.arch < 70 then return false, "wmma needs sm_70" end
  local wm, wn = p.BLOCK_M // p.WARPS_M, p.BLOCK_N // p.WARPS_N
  if wm < 16 or wn < 16 or wm % 16 ~= 0 or wn % 16 ~= 0 then return false, "warp tile not made of 16x16" end
  local frags = (wm // 16) * (wn // 16)
  if frags < 4 or frags > 16 then return false, "4..16 accumulator tiles per warp" end
  local warps = p.WARPS_M * p.WARPS_N
  if warps ~= 4 and warps ~= 8 then return false, "4 or 8 warps per block" end
  if s.n % p.BLOCK_N ~= 0 then return false, "N not a multiple of BLOCK_N" end
  if s.group_size % p.BLOCK_K ~= 0 then return false, "group size not a multiple of BLOCK_K" end
  local kt = s.k // p.BLOCK_K
  if s.k % p.BLOCK_K ~= 0 or kt % p.SPLIT_K ~= 0 then return false, "K steps don't split evenly" end
  if kt // p.SPLIT_K < p.STAGES then return false, "fewer K steps than stages" end
  if smem_bytes(p) > C.smem_max(s.arch) then return false, "shared memory over the limit" end
  -- Split-K only where column and row tiles leave SMs idle.
  if p.SPLIT_K > 1 and (s.n // p.BLOCK_N) >= s.sms then return false, "split-K not needed" end
  return true
end

-- The default: row tiles as tall as M needs, up to 128. Where a 128-row
-- tile is over the shared memory (sm_75's 64 KB), 64 rows: without that,
-- dense weights had no kernel there from M = 65 until q4_dqgemm's.
function T.default(s, m)
  local p = { BLOCK_M = m <= 32 and 32 or m <= 64 and 64 or 128, BLOCK_K = 32, STAGES = 3, SPLIT_K = 1 }
  p.BLOCK_N = (s.n % 128 == 0) and 128 or (s.n % 64 == 0) and 64 or nil
  if not p.BLOCK_N or s.group_size % 32 ~= 0 then return nil end
  p.WARPS_M = p.BLOCK_M == 128 and 2 or 1
  p.WARPS_N = 4
  if s.arch < 80 then p.STAGES = 2 end
  if p.BLOCK_M == 128 and smem_bytes(p) > C.smem_max(s.arch) then p.BLOCK_M, p.WARPS_M = 64, 1 end
  return p
end

function T.constants(p, s)
  return { TEMPLATE = "q4_wmma", PAD = PAD }
end

T.source = [==[
{{ render(C.prelude, { GATHERS = 0 }) }}
#include <mma.h>
using namespace nvcuda;

constexpr int BLOCK_M = {{BLOCK_M}}, BLOCK_N = {{BLOCK_N}}, BLOCK_K = {{BLOCK_K}};
constexpr int WARPS_M = {{WARPS_M}}, WARPS_N = {{WARPS_N}}, STAGES = {{STAGES}};
constexpr int WM = BLOCK_M / WARPS_M, WN = BLOCK_N / WARPS_N;  // warp tile
constexpr int FM = WM / 16, FN = WN / 16;                      // 16x16 tiles per warp
constexpr int LDA = BLOCK_K + {{PAD}}, LDB = BLOCK_K + {{PAD}}, LDC = BLOCK_N + 4;
constexpr int KT = K / BLOCK_K / SPLIT_K;                      // k-steps per block
constexpr int A_STAGE = BLOCK_M * LDA;                         // halves
constexpr int W_STAGE = BLOCK_K / 8 * BLOCK_N;                 // words

{{ render(C.async_copy) }}

// Queue the copies of k-step `kt` (x tile and packed codes) into stage `st`.
__device__ __forceinline__ void load_stage(half *a_s, u32 *w_s, const half *x, const int *perm,
                                           const u32 *qweight, int M, int m0, int n0, int kt) {
  constexpr int A_CHUNKS = BLOCK_M * BLOCK_K / 8;  // 16-byte pieces
  for (int i = threadIdx.x; i < A_CHUNKS; i += THREADS) {
    const int r = i / (BLOCK_K / 8), c = 8 * (i % (BLOCK_K / 8));
    const bool ok = m0 + r < M;
//$ -- (perm is not read: act-order x comes gathered, C.gather_x)
    copy16(&a_s[r * LDA + c], ok ? &x[(size_t)(m0 + r) * K + kt * BLOCK_K + c] : x, ok);
  }
  constexpr int W_CHUNKS = W_STAGE / 4;
  for (int i = threadIdx.x; i < W_CHUNKS; i += THREADS) {
    const int r = i / (BLOCK_N / 4), c = 4 * (i % (BLOCK_N / 4));
    copy16(&w_s[r * BLOCK_N + c], &qweight[(size_t)(kt * BLOCK_K / 8 + r) * N + n0 + c], true);
  }
}

// Unpack the stage's codes into b_s[n][k] (fp16, k contiguous). One thread
// per word: consecutive threads take consecutive columns, so the 16-byte
// stores land LDB * 2 bytes apart, in distinct banks.
__device__ __forceinline__ void dequant_stage(half *b_s, const u32 *w_s, const half *scales,
                                              const half *zeros, int n0, int kt) {
  const int grp = kt * BLOCK_K / GROUP;
  for (int i = threadIdx.x; i < W_STAGE; i += THREADS) {
    const int r = i / BLOCK_N, n = i % BLOCK_N;
    const half s = scales[(size_t)grp * N + n0 + n], z = q4_zero(zeros, grp, n0 + n);
    const half2 s2 = __half2half2(s), nzs2 = __half2half2(q4_neg_zs(z, s));
    half2 v[4];
    q4_unpack(w_s[r * BLOCK_N + n], v);
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = q4_scale(v[j], s2, nzs2);
    // v[j] holds rows (j, j + 4); store rows 0..7 in order.
    uint4 out;
    out.x = __byte_perm(*reinterpret_cast<u32 *>(&v[0]), *reinterpret_cast<u32 *>(&v[1]), 0x5410);
    out.y = __byte_perm(*reinterpret_cast<u32 *>(&v[2]), *reinterpret_cast<u32 *>(&v[3]), 0x5410);
    out.z = __byte_perm(*reinterpret_cast<u32 *>(&v[0]), *reinterpret_cast<u32 *>(&v[1]), 0x7632);
    out.w = __byte_perm(*reinterpret_cast<u32 *>(&v[2]), *reinterpret_cast<u32 *>(&v[3]), 0x7632);
    *reinterpret_cast<uint4 *>(&b_s[n * LDB + 8 * r]) = out;
  }
}

{{ render(C.signature) }}
{
  extern __shared__ __align__(128) unsigned char smem[];
  q4_wait_for_prior();  // (x comes with the weights in every stage)
  half *a_s = reinterpret_cast<half *>(smem);                              // [STAGES][BLOCK_M][LDA]
  u32 *w_s = reinterpret_cast<u32 *>(a_s + STAGES * A_STAGE);              // [STAGES][BLOCK_K/8][BLOCK_N]
  half *b_s = reinterpret_cast<half *>(w_s + STAGES * W_STAGE);            // [BLOCK_N][LDB]
  const int warp = threadIdx.x >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int m0 = blockIdx.y * BLOCK_M, n0 = blockIdx.x * BLOCK_N;
  const int kt0 = blockIdx.z * KT;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  // Prologue: STAGES - 1 k-steps in flight. Every iteration commits one
  // group (possibly empty) so that wait_group counts stay uniform.
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < KT) load_stage(a_s + st * A_STAGE, w_s + st * W_STAGE, x, perm, qweight, M, m0, n0, kt0 + st);
    copy_commit();
  }

  for (int i = 0; i < KT; ++i) {
    const int st = i % STAGES;
    copy_wait<STAGES - 2>();  // k-step i has landed
    __syncthreads();          // ... for every thread; and step i - 1 is done with its buffers
    dequant_stage(b_s, w_s + st * W_STAGE, scales, zeros, n0, kt0 + i);
    const int next = i + STAGES - 1;
    if (next < KT)
      load_stage(a_s + (next % STAGES) * A_STAGE, w_s + (next % STAGES) * W_STAGE, x, perm, qweight, M, m0,
                 n0, kt0 + next);
    copy_commit();
    __syncthreads();          // b_s complete
    const half *a_st = a_s + st * A_STAGE;
#pragma unroll
    for (int kk = 0; kk < BLOCK_K; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa[FM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> fb[FN];
#pragma unroll
      for (int a = 0; a < FM; ++a) wmma::load_matrix_sync(fa[a], a_st + (wm * WM + a * 16) * LDA + kk, LDA);
#pragma unroll
      for (int b = 0; b < FN; ++b) wmma::load_matrix_sync(fb[b], b_s + (wn * WN + b * 16) * LDB + kk, LDB);
#pragma unroll
      for (int a = 0; a < FM; ++a)
#pragma unroll
        for (int b = 0; b < FN; ++b) wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
    }
  }

  // Accumulators -> shared fp32 tile (reusing the pipeline's memory) -> y.
  copy_wait<0>();
  __syncthreads();
  float *c_s = reinterpret_cast<float *>(smem);
#pragma unroll
  for (int a = 0; a < FM; ++a)
#pragma unroll
    for (int b = 0; b < FN; ++b)
      wmma::store_matrix_sync(c_s + (wm * WM + a * 16) * LDC + wn * WN + b * 16, acc[a][b], LDC,
                              wmma::mem_row_major);
  __syncthreads();
  auto tile = [&](int r, int c) { return c_s[r * LDC + c]; };
{{ render(C.epilogue) }}
}
//$ if ACT_ORDER == 1 then
{{ render(C.gather_x) }}
//$ end
]==]

return T
