-- q4_mma: int4 matrix product for mid-size M (tens to hundreds of rows) on
-- the tensor cores through mma.sync.m16n8k16, the weights dequantized in
-- registers.
--
-- Why this shape of kernel: from a few dozen rows on, each weight meets
-- many rows of x, and x is read again by every column tile. So a block
-- takes a TILE_M x TILE_N tile of y (TILE_M = 16 * MT rows), and x rows and
-- packed codes both come through shared memory in a STAGES-deep cp.async
-- pipeline, as they lie in memory. Every warp takes all TILE_M rows for
-- its 32 * CW columns and one of each WARPS_K 32-row blocks of a stage:
-- so each code is dequantized once per block, in registers, and feeds MT
-- mmas; the warps' partial tiles are summed in the epilogue. No fp16 copy
-- of W is ever written (q4_wmma writes one to shared memory, q4_dqgemm to
-- global memory).
--
-- Fragments take q4_decode's order (see there): lane 4g + t takes word row
-- t of a 32-row block (rows 8t .. 8t+7) of four neighbouring columns, one
-- column for each of four 8-column mma tiles, and unpacks it as the row
-- pairs (e, e + 4); mma 0 of the block takes pairs 0 and 1, mma 1 pairs 2
-- and 3. A 16-byte piece x[r][8t .. 8t+7] of x, permuted into the same
-- pairs (four PRMTs), feeds every column of the warp. (Pairs of
-- neighbouring rows would spare x's PRMTs, but unpacking the codes so
-- took longer than the PRMTs: 8 to 13 % slower at M = 64 and 256.)
--
-- Act-order weights: x is gathered through perm once, by C.gather_x's
-- kernel ahead of this one, which then reads it as for any weights.
local C = import("_q4common")

local T = {
  name = "q4_mma",
  formats = { "q4" },
  priority = 9,  -- after q4_wgmma, before q4_decode: at 33 to 64 rows it takes what C.narrow_mid names
  params = {
    { "WARPS_N", { 1, 2, 4 } },    -- warps along N
    { "WARPS_K", { 1, 2, 4 } },    -- warps sharing out a stage's 32-row blocks
    { "MT",      { 2, 4 } },       -- 16-row m tiles: every warp takes all rows of the block
    { "CW",      { 1, 2 } },       -- 32-column strips per warp
    { "BK",      { 64, 128 } },    -- rows of K per pipeline stage
    { "STAGES",  { 2, 3, 4 } },    -- pipeline depth
    { "SPLIT_K", { 1, 2, 4 } },    -- blocks splitting K, reduced in the epilogue
  },
}

local XPAD, WPAD = 32, 8  -- x rows 64 bytes, code rows 32 bytes apart in bank order (see source)

local function block_m(p) return 16 * p.MT end
local function block_n(p) return 32 * p.CW * p.WARPS_N end
-- Groups of scales and zeros a stage spans (grouped weights only).
local function stage_groups(p, s)
  if s.group_size >= s.k then return 0 end
  return math.max(1, p.BK // s.group_size)
end

local function smem_bytes(p, s)
  local bm, bn = block_m(p), block_n(p)
  local x = bm * (p.BK + XPAD) * 2
  local w = (p.BK // 8) * (bn + WPAD) * 4
  local sz = stage_groups(p, s) * bn * 2 * (s.symmetric and 1 or 2)
  local pipe = p.STAGES * (x + w + sz)
  local epilogue = p.WARPS_K * bm * (bn + 4) * 4  -- a partial tile per warp along K
  return math.max(pipe, epilogue)
end

function T.meta(p, s)
  local bm = block_m(p)
  return {
    threads = 32 * p.WARPS_N * p.WARPS_K,
    smem = smem_bytes(p, s),
    tile_m = bm, tile_n = block_n(p), split_k = p.SPLIT_K,
    -- q4_decode below 33 rows; past 512, cuBLAS on expanded weights (q4_dqgemm)
    m_min = 33,
    m_max = 512,
  }
end

function T.check(p, s)
  if s.arch < 80 then return false, "mma.sync.m16n8k16 and cp.async need sm_80" end
  local warps = p.WARPS_N * p.WARPS_K
  if warps ~= 4 and warps ~= 8 then return false, "4 or 8 warps per block" end
  if p.MT * p.CW > 4 then return false, "over 64 accumulators per thread" end
  if (p.BK // 32) % p.WARPS_K ~= 0 then return false, "WARPS_K does not divide the stage's blocks" end
  if s.n % block_n(p) ~= 0 then return false, "N not a multiple of the block's columns" end
  local fits, why = C.k_steps_fit(s, p.BK, p.SPLIT_K, p.STAGES)
  if not fits then return false, why end
  if smem_bytes(p, s) > C.smem_max(s.arch) then return false, "shared memory over the limit" end
  -- split-K only where the column tiles leave SMs idle (one row tile assumed)
  if p.SPLIT_K > 1 and (s.n // block_n(p)) * p.SPLIT_K > 4 * s.sms then return false, "split-K not needed" end
  return true
end

-- The default above 64 rows (below, q4_decode's): what won most tuned
-- shapes on the H100, or half its columns where N needs. Grouped weights
-- take half the columns first: with 64-row groups, or 8192-row ones at
-- K = 28672, the wider tile spilled registers on sm_90
-- (test_defaults_compile compiles every default).
--
-- From 33 to 64 rows, dense weights narrower than 8448 columns on sm_90
-- (C.narrow_mid): eight warps, four along K, 64 columns a block, K split
-- until the column tiles make 128 blocks. On the H200 at M = 64, over the
-- seven such shapes of 13 tuned, it took 1.11x the best time on average
-- (1.29x at worst), where q4_wgmma's default took 1.26x (1.52x at worst;
-- docs/BENCHMARKS.md, 2026-12-04 seventh).
local function default_narrow(s)
  for _, bk in ipairs({ 128, 64 }) do
    local p = { WARPS_N = 2, WARPS_K = bk // 32, MT = 2, CW = 1, BK = bk, STAGES = 4 }
    if C.least_split(p, T.check, s, s.n // block_n(p), 128) then return p end
  end
  return nil
end

function T.default(s, m)
  if C.narrow_mid(s, m) then return default_narrow(s) end
  if m <= 64 then return nil end
  for _, cw in ipairs(s.group_size < s.k and { 1, 2 } or { 2, 1 }) do
    local p = { WARPS_N = 2, WARPS_K = 2, MT = 2, CW = cw, BK = 128, STAGES = 4, SPLIT_K = 1 }
    if T.check(p, s) then return p end
    p.BK = 64
    if T.check(p, s) then return p end
  end
  return nil
end

function T.constants(p, s)
  return { TEMPLATE = "q4_mma", XPAD = XPAD, WPAD = WPAD, SG = stage_groups(p, s) }
end

T.source = [==[
{{ render(C.prelude, { GATHERS = 0 }) }}
{{ render(C.async_copy) }}
constexpr int WARPS_N = {{WARPS_N}}, WARPS_K = {{WARPS_K}}, MT = {{MT}}, CW = {{CW}};
constexpr int BK = {{BK}}, STAGES = {{STAGES}};
constexpr int WTN = 32 * CW;                 // a warp's columns (and all TILE_M rows)
constexpr int KT = K / BK / SPLIT_K;         // k-steps per block
// Shared rows are padded so that a quarter warp's 16-byte reads (lanes
// 4g + t, g = 0, 1, t = 0..3) fall in eight distinct bank groups: x rows
// g, g + 1 are 64 bytes apart (mod 128) and pieces t 16 bytes; code rows
// t are 32 bytes apart (mod 128) and columns 4g 16 bytes.
constexpr int LDX = BK + {{XPAD}};           // halves per x row
constexpr int LDW = TILE_N + {{WPAD}};       // words per code row
constexpr int LDC = TILE_N + 4;              // floats per row of a partial tile
// Grouped weights: the SG groups of scales (and zeros) a stage spans
// come with it, one row of TILE_N halves each (SG = 0: per-channel).
constexpr int SG = {{SG}}, SG_ROWS = SG * {{SYMMETRIC == 1 and 1 or 2}};
constexpr int X_STAGE = TILE_M * LDX;          // halves
constexpr int W_STAGE = BK / 8 * LDW;          // words
constexpr int S_STAGE = SG_ROWS * TILE_N / 2;  // words
constexpr int STAGE_WORDS = X_STAGE / 2 + W_STAGE + S_STAGE;

//$ if SG > 0 then
{{ render(C.stage_scales) }}
//$ end
// Queue the copies of k-step kt into one stage: TILE_M rows of x (rows
// past M zero-filled), BK / 8 rows of codes, and for grouped weights the
// stage's rows of scales and zeros. Each thread's share is a fixed number
// of 16-byte pieces, unrolled, so that their offsets are computed once
// outside the k loop and a k-step's copy costs an add and the copy.
template <int PIECES, typename F> __device__ __forceinline__ void for_pieces(F f) {
#pragma unroll
  for (int j = 0; j < (PIECES + THREADS - 1) / THREADS; ++j) {
    const int i = threadIdx.x + j * THREADS;
    if (PIECES % THREADS == 0 || i < PIECES) f(i);
  }
}

__device__ __forceinline__ void load_stage(u32 *stage, const half *x, const u32 *qweight, const half *scales,
                                           const half *zeros, int M, int m0, int n0, int kt) {
  half *xs = reinterpret_cast<half *>(stage);
  u32 *ws = stage + X_STAGE / 2;
  for_pieces<TILE_M * BK / 8>([&](int i) {
    const int r = i / (BK / 8), c = 8 * (i % (BK / 8));
    const bool ok = m0 + r < M;
    copy16(&xs[r * LDX + c], ok ? &x[(size_t)(m0 + r) * K + kt * BK + c] : x, ok);
  });
  for_pieces<BK / 8 * TILE_N / 4>([&](int i) {
    const int r = i / (TILE_N / 4), c = 4 * (i % (TILE_N / 4));
    copy16(&ws[r * LDW + c], &qweight[(size_t)(kt * BK / 8 + r) * N + n0 + c], true);
  });
//$ if SG > 0 then
  stage_scales<THREADS>(reinterpret_cast<half *>(ws + W_STAGE), scales, zeros, n0, kt, threadIdx.x);
//$ end
}

{{ render(C.signature) }}
{
  extern __shared__ __align__(128) u32 smem[];  // [STAGES][STAGE_WORDS], then the partial tiles
  q4_wait_for_prior();  // (x comes with the weights in every stage)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wk = warp / WARPS_N, wn = warp % WARPS_N;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = blockIdx.y * TILE_M, n0 = blockIdx.x * TILE_N;
  const int kt0 = blockIdx.z * KT;
  // this thread's first column in strip c of the warp, within the tile
  auto col_of = [&](int c) { return wn * WTN + 32 * c + 4 * g; };

  // acc[m tile][8-column tile 4c + i]: column 4g' + i of strip c is column
  // g' of tile 4c + i, so the fragment's columns 2t, 2t + 1 are 8t + i and
  // 8t + 4 + i of the strip.
  float acc[MT][4 * CW][4] = {};
//$ if SG > 0 then
  half2 s[CW][4], nzs[CW][4];  // the current group's scale and -zero*scale per column
//$ else
  // Per-channel weights go into the mma as bare codes, q * 2^-24 (see
  // q4_decode), and an mma against ones sums each row of x beside them;
  // the epilogue applies y = s * 2^24 * (sum - z * sum of x) once.
  float xsum[MT][4] = {};
  constexpr u32 BARE_ONES = 0x00010001u;  // (2^-24, 2^-24), as bare as the codes
//$ end

  // Prologue: STAGES - 1 k-steps in flight. Every step commits one group of
  // copies (possibly empty) so that the wait counts stay uniform.
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < KT) load_stage(smem + st * STAGE_WORDS, x, qweight, scales, zeros, M, m0, n0, kt0 + st);
    copy_commit();
  }

  for (int i = 0; i < KT; ++i) {
    copy_wait<STAGES - 2>();  // k-step i has landed for this thread
    __syncthreads();          // ... and for every thread; step i - 1's stage is free
    const int next = i + STAGES - 1;
    if (next < KT)
      load_stage(smem + (next % STAGES) * STAGE_WORDS, x, qweight, scales, zeros, M, m0, n0, kt0 + next);
    copy_commit();

    const u32 *stage = smem + (i % STAGES) * STAGE_WORDS;
    const half *xs = reinterpret_cast<const half *>(stage);
    const u32 *ws = stage + X_STAGE / 2;
    // This warp's 32-row blocks of the stage: wk, wk + WARPS_K, ... Each
    // weight is dequantized by one warp of the block and used for every
    // row; the warps' partial sums meet in the epilogue.
#pragma unroll
    for (int bi = 0; bi < BK / 32 / WARPS_K; ++bi) {
      const int b = wk + WARPS_K * bi;
//$ if SG > 0 then
      // a new group, or the stage's copy of it: its scales and zeros
      if (bi == 0 || b * 32 / GROUP != (b - WARPS_K) * 32 / GROUP) {
        const half *ss = reinterpret_cast<const half *>(ws + W_STAGE) + (b * 32 / GROUP) * TILE_N;
#pragma unroll
        for (int c = 0; c < CW; ++c) {
          const uint2 s4 = *reinterpret_cast<const uint2 *>(&ss[col_of(c)]);
//$ if SYMMETRIC == 1 then
          const uint2 z4 = make_uint2(0x48004800u, 0x48004800u);
//$ else
          const uint2 z4 = *reinterpret_cast<const uint2 *>(&ss[SG * TILE_N + col_of(c)]);
//$ end
          q4_column_scales(s4, z4, s[c], nzs[c]);
        }
      }
//$ end
      // The block's codes, dequantized: bw[4c + j] holds column 4g + j of
      // strip c as the row pairs (e, e + 4), e = 0..3: (q - z) * s in fp16
      // for grouped weights, bare codes for per-channel ones.
      u32 bw[4 * CW][4];
#pragma unroll
      for (int c = 0; c < CW; ++c) {
        const uint4 w4 = *reinterpret_cast<const uint4 *>(&ws[(4 * b + t) * LDW + col_of(c)]);
        const u32 words[4] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
//$ if SG > 0 then
          half2 v[4];
          q4_unpack(words[j], v);
#pragma unroll
          for (int e = 0; e < 4; ++e) bw[4 * c + j][e] = q4_h2_bits(q4_scale(v[e], s[c][j], nzs[c][j]));
//$ else
          q4_unpack_bare(words[j], bw[4 * c + j]);
//$ end
        }
      }
      // x rows g and g + 8 of each m tile, rows 8t .. 8t+7 of the block, as
      // the same pairs: a[mi][h] for mma h, which takes pairs 2h and 2h + 1.
      u32 a[MT][2][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const uint4 v = *reinterpret_cast<const uint4 *>(&xs[(16 * mi + g + 8 * r) * LDX + 32 * b + 8 * t]);
          a[mi][0][r] = __byte_perm(v.x, v.z, 0x5410);      // (0, 4)
          a[mi][0][2 + r] = __byte_perm(v.x, v.z, 0x7632);  // (1, 5)
          a[mi][1][r] = __byte_perm(v.y, v.w, 0x5410);      // (2, 6)
          a[mi][1][2 + r] = __byte_perm(v.y, v.w, 0x7632);  // (3, 7)
        }
      }
      // Consecutive mmas go to different accumulators, so none waits for
      // the one before.
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int mi = 0; mi < MT; ++mi)
#pragma unroll
          for (int n = 0; n < 4 * CW; ++n) q4_mma16816(acc[mi][n], a[mi][h], bw[n][2 * h], bw[n][2 * h + 1]);
//$ if SG == 0 then
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) q4_mma16816(xsum[mi], a[mi][h], BARE_ONES, BARE_ONES);
//$ end
    }
  }

  // Accumulators -> each warp's partial tile in shared memory (over the
  // pipeline's stages), [WARPS_K][TILE_M][LDC] -> summed -> y.
  copy_wait<0>();
  __syncthreads();
  float *c_s = reinterpret_cast<float *>(smem) + wk * TILE_M * LDC;
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int c = 0; c < CW; ++c)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int r = 16 * mi + g, n = wn * WTN + 32 * c + 8 * t + j;
        float (&v)[4] = acc[mi][4 * c + j];
//$ if SG == 0 then
        constexpr float UNBARE = 16777216.f;  // 2^24
        const float s0 = UNBARE * __half2float(scales[n0 + n]), s1 = UNBARE * __half2float(scales[n0 + n + 4]);
        const float z0 = __half2float(q4_zero(zeros, 0, n0 + n)), z1 = __half2float(q4_zero(zeros, 0, n0 + n + 4));
        v[0] = s0 * (v[0] - z0 * xsum[mi][0]);
        v[1] = s1 * (v[1] - z1 * xsum[mi][0]);
        v[2] = s0 * (v[2] - z0 * xsum[mi][2]);
        v[3] = s1 * (v[3] - z1 * xsum[mi][2]);
//$ end
        c_s[r * LDC + n] = v[0];
        c_s[r * LDC + n + 4] = v[1];
        c_s[(r + 8) * LDC + n] = v[2];
        c_s[(r + 8) * LDC + n + 4] = v[3];
      }
  __syncthreads();
  const float *parts = reinterpret_cast<const float *>(smem);
  auto tile = [&](int r, int c) {
    float v = 0.f;
#pragma unroll
    for (int k = 0; k < WARPS_K; ++k) v += parts[(k * TILE_M + r) * LDC + c];
    return v;
  };
{{ render(C.epilogue) }}
}
//$ if ACT_ORDER == 1 then
{{ render(C.gather_x) }}
//$ end
]==]

return T
