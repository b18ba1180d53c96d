-- q4_wgmma: int4 matrix product for mid-size and large M on Hopper's
-- warpgroup tensor core instruction, wgmma.mma_async (sm_90a only).
--
-- Why: from a few dozen rows on the product is bound by the tensor cores,
-- and mma.sync (q4_mma) reaches about half of a Hopper GPU's fp16 rate;
-- wgmma reaches all of it, and reads both operands from shared memory.
--
-- A block takes a TILE_M x TILE_N tile of y: WG consumer warpgroups of MW
-- 64-row m tiles each, all TILE_N columns, and one loader warp. (Or, with
-- WN = 2, q4s up to 64 rows: two warpgroups side by side along N, each
-- multiplying the one m tile by half of the columns. That gives q4s's
-- costly expansion twice the warps without more tensor work, where a
-- second warpgroup along M would double the wgmmas, half of them on zero
-- rows.)
-- The loader copies x rows and packed codes (and grouped scales) into a
-- STAGES-deep ring of stages, BK rows of K each, with cp.async, and each
-- lane's copies arrive on the stage's `full` mbarrier once they have
-- landed. Each stage, the consumers expand its codes into an fp16 tile of
-- W^T (one of three: the wgmmas of the two stages before may still read
-- the others), fence their stores for wgmma's async proxy, and each
-- warpgroup multiplies its m tiles of x by the tile, BK / 16 wgmmas a
-- tile. A stage's slot goes back to the loader (its `empty` mbarrier) once
-- the wgmmas that read it have finished, one stage later. Only the loader
-- has copies in flight, so the consumers' proxy fences wait for their own
-- stores alone.
--
-- Both operands lie K-major in wgmma's 128-byte swizzle: a 64-column block
-- of a tile is one 128-byte row per row of x (or column of W), 8-row atoms
-- of 1024 bytes, the 16-byte piece kc of row r in slot kc ^ (r % 8) (the
-- pieces of 8 rows that a core matrix takes then fall in 8 bank groups).
--
-- Per-channel weights go in as bare codes, q * 2^-24 (see q4_decode), and
-- eight more columns of W^T hold bare ones, so the same wgmma also sums
-- each row of x; the epilogue applies y = s * 2^24 * (sum - z * sum of x).
-- Grouped weights go in as (q - z) * s.
--
-- 16:32 sparse weights (q4s) come as a stage's mask rows and code rows (3/4
-- of the dense words), and their consumers expand each block's kept codes
-- to their rows with q4s_expand (C.sparse) before scaling: (q - z) * s,
-- per-channel ones too, a pruned row exactly 0. (Bare codes would need the
-- sums of x over each column's kept rows, a second tile of W^T's size.)
local C = import("_q4common")

local T = {
  name = "q4_wgmma",
  formats = { "q4", "q4s" },
  priority = 8,  -- asked for a default before q4_decode, which takes what this does not
  params = {
    { "WG",      { 1, 2 } },       -- warpgroups per block
    { "MW",      { 1, 2 } },       -- 64-row m tiles per warpgroup
    { "TN",      { 64, 128 } },    -- columns per block (wgmma's N, with the ones)
    { "BK",      { 64, 128 } },    -- rows of K per pipeline stage
    { "STAGES",  { 3, 4 } },       -- pipeline depth
    { "SPLIT_K", { 1, 2, 4 } },    -- blocks splitting K, reduced in the epilogue
    { "WN",      { 1, 2 }, when = function(s) return s.format == "q4s" end,
                 optional = true },  -- warpgroups side by side along N (q4s)
  },
}

local function per_channel(s) return s.group_size >= s.k end
local function sparse(s) return s.format == "q4s" end
-- bare codes and a sum of x: dense per-channel weights
local function bare(s) return per_channel(s) and not sparse(s) end
local function tile_m(p) return 64 * p.WG * p.MW end
local function threads(p) return 128 * p.WG * p.WN + 32 end  -- the warpgroups, and a loader warp
-- wgmma's N: a warpgroup's columns of the tile and, for bare codes, 8 of ones
local function nb(p, s) return p.TN // p.WN + (bare(s) and 8 or 0) end
-- groups of scales (and zeros) a stage spans, grouped weights only
local function stage_groups(p, s)
  if per_channel(s) then return 0 end
  return math.max(1, p.BK // s.group_size)
end

-- Rows of words a stage holds: BK / 8 of codes, or for q4s BK / 32 of
-- masks and BK / 16 of codes.
local function word_rows(p, s) return sparse(s) and 3 * p.BK // 32 or p.BK // 8 end

-- A pipeline stage: TILE_M rows of x, the rows of words and the grouped
-- scales' rows, to a multiple of 1024 bytes (the swizzle's atoms).
local function stage_bytes(p, s)
  local rows = stage_groups(p, s) * (s.symmetric and 1 or 2)
  local stage = tile_m(p) * p.BK * 2 + word_rows(p, s) * p.TN * 4 + rows * p.TN * 2
  return (stage + 1023) // 1024 * 1024
end

-- q4s's expansion table: 256 entries in 32 copies, one per bank (each lane
-- of a warp looks up its own column's mask byte)
local Q4S_COPIES = 32
local function table_bytes(s) return sparse(s) and 256 * Q4S_COPIES * 4 or 0 end

local function smem_bytes(p, s)
  -- (1024 more: the tiles start at a multiple of 1024 bytes, as the swizzle needs)
  local pipe = 1024 + p.STAGES * stage_bytes(p, s) + 3 * p.WN * nb(p, s) * p.BK * 2 + 16 * p.STAGES + table_bytes(s)
  local epilogue = 1024 + tile_m(p) * (p.TN + 4) * 4
  return math.max(pipe, epilogue)
end

function T.meta(p, s)
  return {
    threads = threads(p), smem = smem_bytes(p, s),
    tile_m = tile_m(p), tile_n = p.TN, split_k = p.SPLIT_K,
    m_min = 33, m_max = p.WN > 1 and 64 or 4096,
  }
end

function T.check(p, s)
  if s.arch ~= 90 then return false, "wgmma needs sm_90a (Hopper)" end
  if p.MW * nb(p, s) // 2 > 136 then return false, "over 136 accumulators per thread" end
  if (128 * p.WG * p.WN) % p.TN ~= 0 then return false, "a thread expands one column" end
  -- Two warpgroups along N: on the H100 they took 0.85x to 0.97x of the
  -- best one-warpgroup time for q4s at 64 rows, but lost to WG = 2 at 128
  -- and 256 rows and, for dense weights, at 64 rows too (docs/BENCHMARKS.md,
  -- 2026-12-08); with WG = 2 as well they spilled.
  if p.WN > 1 and (not sparse(s) or p.WG > 1 or p.MW > 1) then
    return false, "WN = 2: q4s only, one warpgroup along M of one m tile"
  end
  if s.n % p.TN ~= 0 then return false, "N not a multiple of the block's columns" end
  local fits, why = C.k_steps_fit(s, p.BK, p.SPLIT_K, p.STAGES)
  if not fits then return false, why end
  if smem_bytes(p, s) > C.smem_max(s.arch) then return false, "shared memory over the limit" end
  if p.SPLIT_K > 1 and (s.n // p.TN) * p.SPLIT_K > 4 * s.sms then return false, "split-K not needed" end
  return true
end

-- p with the least split-K that makes its tiles for m rows a wave of the
-- GPU's s.sms (C.least_split).
local function split_to_fill(p, s, m)
  return C.least_split(p, T.check, s, (s.n // p.TN) * ((m + tile_m(p) - 1) // tile_m(p)), s.sms)
end

-- From 33 to 64 rows: one warpgroup of one 64-row tile, 128 columns
-- (dense) or 64 (q4s), K split until the tiles make a wave (s.sms). On the
-- H200 that came within 13 % (dense) and 4 % (q4s) of the tuned best on
-- average over the llama-13b shapes at M = 64 (docs/BENCHMARKS.md,
-- 2026-12-04 seventh); q4_decode's default, which served these before,
-- took 1.6x to 1.9x, and its q4s one spilled registers.
local function default_low(s, m)
  if C.narrow_mid(s, m) then return nil end  -- q4_mma's default takes these
  for _, tn in ipairs(sparse(s) and { 64 } or { 128, 64 }) do
    local p = split_to_fill({ WG = 1, MW = 1, TN = tn, BK = 64, STAGES = 4, WN = 1 }, s, m)
    if p then return p end
  end
  return nil
end

-- The default above 64 rows on sm_90 (elsewhere q4_mma's): what won
-- 22016 x 4096 at M = 256 on the H200, or half its columns where N
-- needs. Only where its tiles give every SM of a large GPU one: unsplit on
-- fewer (4096 x 11008 at M = 256, 64 tiles) it took 122 us on the H200
-- against 86 for q4_mma's tuned winner, so q4_mma's default serves those.
-- q4s: above 64 rows every shape it takes. Above 128 rows, 256 x 128
-- tiles where they make a wave of 128 or more: every tile of x expands its
-- columns' codes again, so the taller the fewer times (tuned on the H200
-- at M = 1024 and 2048, 1.3x to 1.45x faster than the tiles below). Else
-- 64-column tiles (what its tuned winners used at M = 64 and 256) with K
-- split until the tiles fill the SMs. Without this, q4_decode would serve
-- q4s, a small-M kernel (q4_mma takes no q4s): on the H200 the 64-column
-- default took 1.35x to 3.3x less time than q4_decode's at M = 100 to
-- 2048. From M = 129 (q4s) or 257 (dense) on, q4_dqgemm's default comes
-- first where cuBLAS loads.
function T.default(s, m)
  if s.arch ~= 90 or m <= 32 then return nil end
  if m <= 64 then return default_low(s, m) end
  if sparse(s) then
    local tall = { WG = 2, MW = 2, TN = 128, BK = 64, STAGES = 4, SPLIT_K = 1, WN = 1 }
    if m > 128 and T.check(tall, s) and (s.n // tall.TN) * ((m + tile_m(tall) - 1) // tile_m(tall)) >= 128 then
      return tall
    end
    for _, bk in ipairs({ 128, 64 }) do
      local p = split_to_fill({ WG = 2, MW = 1, TN = 64, BK = bk, STAGES = 4, WN = 1 }, s, m)
      if p then return p end
    end
    return nil
  end
  for _, tn in ipairs({ 128, 64 }) do
    local p = { WG = 2, MW = 1, TN = tn, BK = 64, STAGES = 3, SPLIT_K = 1, WN = 1 }
    if T.check(p, s) then
      if (s.n // tn) * ((m + tile_m(p) - 1) // tile_m(p)) < s.sms then return nil end
      return p
    end
  end
  return nil
end

-- The wgmma of one m tile and one k16 step, its NB / 2 accumulators listed
-- out (inline assembly takes no arrays).
local function wgmma_asm(n)
  local regs, outs = {}, {}
  for i = 0, n // 2 - 1 do
    regs[#regs + 1] = "%" .. i
    outs[#outs + 1] = '"+f"(d[' .. i .. '])'
  end
  return string.format(
    'asm volatile("{\\n .reg .pred p;\\n setp.ne.b32 p, 1, 0;\\n"\n' ..
    '      " wgmma.mma_async.sync.aligned.m64n%dk16.f32.f16.f16 {%s}, %%%d, %%%d, p, 1, 1, 0, 0;\\n}"\n' ..
    '      : %s\n      : "l"(da), "l"(db));',
    n, table.concat(regs, ","), n // 2, n // 2 + 1, table.concat(outs, ", "))
end

function T.constants(p, s)
  return { TEMPLATE = "q4_wgmma", NB = nb(p, s), SG = stage_groups(p, s), STAGE_BYTES = stage_bytes(p, s),
           WGMMA = wgmma_asm(nb(p, s)), BARE = bare(s) and 1 or 0, WORD_ROWS = word_rows(p, s),
           -- in the source, the rows of an expanded tile of W^T: NB, or with
           -- WN = 2 (q4s: no ones) the tile's columns, NB for each warpgroup
           BT = p.WN == 1 and "NB" or "TILE_N",
           -- q4s_expand's pairs as neighbouring rows, as a piece of W^T holds them
           Q4S_COPIES = Q4S_COPIES, Q4S_BARE = 0, Q4S_NEIGHBOURS = 1 }
end

T.source = [==[
{{ render(C.prelude, { GATHERS = 0 }) }}
{{ render(C.async_copy) }}
//$ if SPARSE == 1 then
{{ render(C.sparse_codes) }}
{{ render(C.sparse) }}
//$ end
typedef unsigned long long u64;
constexpr int MW = {{MW}}, BK = {{BK}}, STAGES = {{STAGES}};
//$ if WN == 1 then
constexpr int NB = {{NB}};                  // wgmma's N: TILE_N columns (+ 8 of ones for bare codes)
//$ else
// WN warpgroups side by side along N: warpgroup wn multiplies the TNW
// columns from wn TNW on, rows wn NB .. of each expanded tile of W^T
constexpr int WN = {{WN}}, TNW = TILE_N / WN;
constexpr int NB = {{NB}};                  // wgmma's N: TNW columns
//$ end
constexpr int KT = K / BK / SPLIT_K;        // k-steps per block
constexpr int LDC = TILE_N + 4;             // floats per row of the finished tile
// Grouped weights: the SG groups of scales (and zeros) a stage spans come
// with it, one row of TILE_N halves each (SG = 0: per-channel).
constexpr int SG = {{SG}}, SG_ROWS = SG * {{SYMMETRIC == 1 and 1 or 2}};
// A stage: TILE_M rows of x, WORD_ROWS rows of words (BK / 8 of codes;
// q4s: BK / 32 of masks, then BK / 16 of codes), the scale rows, in
// STAGE_BYTES (a multiple of 1024, as the swizzle needs)
constexpr int WORD_ROWS = {{WORD_ROWS}};
constexpr int X_BYTES = TILE_M * BK * 2, W_BYTES = WORD_ROWS * TILE_N * 4;
constexpr int STAGE_BYTES = {{STAGE_BYTES}};
constexpr int B_BYTES = {{BT}} * BK * 2;        // one expanded tile of W^T
constexpr int CONSUMERS = THREADS - 32;     // the warpgroups; the last warp loads
static_assert(CONSUMERS % TILE_N == 0, "a thread expands words of one column");

// Byte offset of 16-byte piece kc of row r in an operand tile of ROWS rows,
// 128-byte swizzle: each 64-column block of the tile is ROWS rows of 128
// bytes, 8-row atoms of 1024, piece kc of row r in slot kc ^ (r % 8).
template <int ROWS> __device__ __forceinline__ int piece(int r, int kc) {
  return (kc >> 3) * ROWS * 128 + r * 128 + (((kc & 7) ^ (r & 7)) << 4);
}
// Byte offset of k16 step s of the rows from r0 (a multiple of 8) on.
template <int ROWS> __device__ __forceinline__ int step_at(int r0, int s) {
  return (s >> 2) * ROWS * 128 + r0 * 128 + (s & 3) * 32;
}

// wgmma's shared-memory matrix descriptor: start address, leading byte
// offset (unused in this layout: 1), stride byte offset between 8-row atoms
// (1024), each in 16-byte units, and the layout, 128-byte swizzle (1).
__device__ __forceinline__ u64 smem_desc(const void *p) {
  const u32 a = (u32)__cvta_generic_to_shared(p);
  return (u64)((a & 0x3ffffu) >> 4) | (u64)1 << 16 | (u64)(1024 >> 4) << 32 | (u64)1 << 62;
}

// D += A * B^T for one m tile and one k16 step (A: 64 rows of x, B: NB
// rows of W^T, both descriptors of the step's first core matrices).
__device__ __forceinline__ void wgmma(float (&d)[NB / 2], u64 da, u64 db) {
  {{WGMMA}}
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); }
// Barrier of the consumer threads only (named barrier 1).
__device__ __forceinline__ void consumers_sync() { asm volatile("bar.sync 1, %0;" :: "n"(CONSUMERS) : "memory"); }

// The pipeline's barriers (mbarrier objects in shared memory).
__device__ __forceinline__ void mbar_init(u64 *b, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"((u32)__cvta_generic_to_shared(b)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(u64 *b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"((u32)__cvta_generic_to_shared(b)) : "memory");
}
// Arrives on b once every cp.async this thread has issued so far has landed.
__device__ __forceinline__ void copy_arrive(u64 *b) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" :: "r"((u32)__cvta_generic_to_shared(b)) : "memory");
}
// Waits until phase `parity` of b has completed (acquire: what the arrivals
// released is visible after it).
__device__ __forceinline__ void mbar_wait(u64 *b, u32 parity) {
  asm volatile("{\n .reg .pred done;\n wait:\n"
               " mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
               " @!done bra wait;\n}" :: "r"((u32)__cvta_generic_to_shared(b)), "r"(parity) : "memory");
}
// Shared-memory writes of this thread (plain stores and finished cp.async
// copies) made visible to wgmma, which reads through the async proxy.
__device__ __forceinline__ void fence_to_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
// Pins the accumulators at this point of the program: the compiler must not
// move their reads above a wait for the wgmmas that write them.
__device__ __forceinline__ void pin(float (&d)[NB / 2]) {
#pragma unroll
  for (int i = 0; i < NB / 2; ++i) asm volatile("" : "+f"(d[i]) :: "memory");
}

//$ if SPARSE == 0 then
__device__ __forceinline__ u32 prmt(u32 a, u32 b, u32 sel) {  // (q4s: C.sparse_codes has it)
  u32 r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}
//$ end

//$ if SG > 0 then
{{ render(C.stage_scales) }}
//$ end
// Queue the copies of k-step kt into one stage: TILE_M rows of x (rows past
// M zero-filled) in operand order, the WORD_ROWS rows of words (q4s: mask
// rows, then code rows), and for grouped weights the stage's rows of scales
// and zeros. One warp issues every copy, so each is an add and the copy:
// lane l takes row l % 8 of every 8-row group of x, pieces l / 8 + 4 h of it
// (h = 0 .. BK / 32 - 1), and of the words columns 4 (l % CPR) .. + 3 of
// rows l / CPR + (32 / CPR) j, CPR = TILE_N / 4 pieces a row.
__device__ __forceinline__ void load_stage(char *stage, const half *x, const u32 *qweight, const u32 *mask,
                                           const half *scales, const half *zeros, int M, int m0, int n0, int kt) {
  const int lane = threadIdx.x & 31;
  const half *xl = x + (size_t)(m0 + (lane & 7)) * K + kt * BK + 8 * (lane >> 3);
  // Two loops, not one with `full || row < M`: ptxas keeps that test and a
  // select in every copy, and the loader's instructions for a stage double.
  if (m0 + TILE_M <= M) {  // every row there: no tests
#pragma unroll
    for (int rg = 0; rg < TILE_M / 8; ++rg)
#pragma unroll
      for (int h = 0; h < BK / 32; ++h)
        copy16(stage + piece<TILE_M>(8 * rg + (lane & 7), (lane >> 3) + 4 * h), xl + (size_t)rg * 8 * K + 32 * h, true);
  } else {
#pragma unroll
    for (int rg = 0; rg < TILE_M / 8; ++rg) {
      const int r = 8 * rg + (lane & 7);
      const bool ok = m0 + r < M;
#pragma unroll
      for (int h = 0; h < BK / 32; ++h)
        copy16(stage + piece<TILE_M>(r, (lane >> 3) + 4 * h), ok ? xl + (size_t)rg * 8 * K + 32 * h : x, ok);
    }
  }
  constexpr int CPR = TILE_N / 4, RSTEP = 32 / CPR;
  u32 *ws = reinterpret_cast<u32 *>(stage + X_BYTES);  // [WORD_ROWS][TILE_N]
//$ if SPARSE == 1 then
  // rows BK / 32 of masks, then BK / 16 of codes
  constexpr int MROWS = BK / 32;
  const u32 *ml = mask + (size_t)(kt * MROWS + lane / CPR) * N + n0 + 4 * (lane % CPR);
  const u32 *ql = qweight + (size_t)kt * BK / 16 * N + n0 + 4 * (lane % CPR);
#pragma unroll
  for (int j = 0; j < WORD_ROWS / RSTEP; ++j) {
    const int r = lane / CPR + RSTEP * j;
    copy16(&ws[r * TILE_N + 4 * (lane % CPR)], r < MROWS ? ml + (size_t)RSTEP * j * N : ql + (size_t)(r - MROWS) * N, true);
  }
//$ else
  const u32 *ql = qweight + (size_t)(kt * BK / 8 + lane / CPR) * N + n0 + 4 * (lane % CPR);
#pragma unroll
  for (int j = 0; j < BK / 8 / RSTEP; ++j)
    copy16(&ws[(lane / CPR + RSTEP * j) * TILE_N + 4 * (lane % CPR)], ql + (size_t)RSTEP * j * N, true);
//$ end
//$ if SG > 0 then
  stage_scales<32>(reinterpret_cast<half *>(stage + X_BYTES + W_BYTES), scales, zeros, n0, kt, lane);
//$ end
}

//$ if SG > 0 then
// Grouped weights: the scale and -zero * scale of column c for row k of a
// stage, from the stage's rows of them, each in both halves of a pair.
__device__ __forceinline__ void group_scale(const char *stage, int k, int c, half2 &s2, half2 &nzs2) {
  const int grp = GROUP >= BK ? 0 : k / GROUP;
  const half *ss = reinterpret_cast<const half *>(stage + X_BYTES + W_BYTES);
  const half s1 = ss[grp * TILE_N + c];
//$ if SYMMETRIC == 1 then
  const half z1 = __ushort_as_half(0x4800);
//$ else
  const half z1 = ss[(SG + grp) * TILE_N + c];
//$ end
  s2 = __half2half2(s1);
  nzs2 = __half2half2(q4_neg_zs(z1, s1));
}
//$ end

{{ render(C.signature) }}
{
  // [STAGES][STAGE_BYTES], [3][B_BYTES], the barriers; then the finished tile
  extern __shared__ __align__(1024) char smem_raw[];
  char *const smem = smem_raw + ((1024 - (u32)__cvta_generic_to_shared(smem_raw) % 1024) % 1024);
  char *const bt = smem + STAGES * STAGE_BYTES;   // the three expanded tiles of W^T
  u64 *const full = reinterpret_cast<u64 *>(bt + 3 * B_BYTES), *const empty = full + STAGES;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
//$ if WN == 1 then
  const int wg = warp >> 2, wq = warp & 3;         // warpgroup, and warp within it
//$ else
  // warpgroup along M (one), along N, and warp within it
  const int wg = 0, wn = warp >> 2, wq = warp & 3;
//$ end
  const int m0 = blockIdx.y * TILE_M, n0 = blockIdx.x * TILE_N;
  const int kt0 = blockIdx.z * KT;

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 32);          // the loader's lanes, once their copies have landed
      mbar_init(&empty[s], CONSUMERS);  // every consumer thread, once its wgmmas have read the stage
    }
  }
//$ if SPARSE == 1 then
  u32 *const table = reinterpret_cast<u32 *>(empty + STAGES);  // q4s_expand's
  q4s_build_table(table);
//$ end
//$ if BARE == 1 then
  // The ones: rows TILE_N .. TILE_N + 7 of the three tiles of W^T, bare 2^-24.
  for (int i = threadIdx.x; i < 3 * 8 * BK / 8; i += THREADS) {
    const int b = i / BK, r = TILE_N + (i & 7), kc = (i >> 3) % (BK / 8);
    *reinterpret_cast<uint4 *>(bt + b * B_BYTES + piece<NB>(r, kc)) =
        make_uint4(0x00010001u, 0x00010001u, 0x00010001u, 0x00010001u);
  }
//$ end
  q4_wait_for_prior();  // (x comes with the weights in every stage)
  __syncthreads();      // the barriers initialized, the ones (or q4s's table) written

  float d[MW][NB / 2];
  if (warp == CONSUMERS / 32) {
    // The loader warp: stage i into slot i % STAGES once the consumers have
    // finished with the stage before in that slot. Only this warp has
    // copies in flight, so the consumers' proxy fences wait for nothing.
    for (int i = 0; i < KT; ++i) {
      const int slot = i % STAGES;
      if (i >= STAGES) mbar_wait(&empty[slot], ((i / STAGES) & 1) ^ 1);
      load_stage(smem + slot * STAGE_BYTES, x, qweight, mask, scales, zeros, M, m0, n0, kt0 + i);
      copy_arrive(&full[slot]);  // arrives when this lane's copies have landed
    }
    copy_wait<0>();
  } else {
#pragma unroll
    for (int mt = 0; mt < MW; ++mt)
#pragma unroll
      for (int i = 0; i < NB / 2; ++i) d[mt][i] = 0.f;
    // The column this thread expands, and its first word row of a stage.
    const int my_n = threadIdx.x % TILE_N, my_wr = threadIdx.x / TILE_N;
    constexpr int WR_STEP = CONSUMERS / TILE_N;
//$ if SPARSE == 1 and SG == 0 then
    // per-channel q4s: the column's scale and zero, for the whole loop
    const half s1 = scales[n0 + my_n];
    const half2 s2 = __half2half2(s1), nzs2 = __half2half2(q4_neg_zs(q4_zero(zeros, 0, n0 + my_n), s1));
//$ end
    for (int i = 0; i < KT; ++i) {
      const int slot = i % STAGES;
      mbar_wait(&full[slot], (i / STAGES) & 1);  // stage i has landed
      const char *stage = smem + slot * STAGE_BYTES;
      // Its tile of W^T: last read by the wgmmas of step i - 3, which every
      // warpgroup waited for before the consumers' barrier of step i - 1.
      char *b = bt + (i % 3) * B_BYTES;
//$ if SPARSE == 1 then
      // Expand this thread's PPT pieces of the stage, rows 8p .. 8p + 7 of
      // column my_n for p = p0 .., one after another (so that a thread reads
      // a block's mask and code words once), into pieces (my_n, p) of W^T.
      constexpr int PPT = BK / 8 / WR_STEP;
      const int p0 = my_wr * PPT;
      const u32 *ms = reinterpret_cast<const u32 *>(stage + X_BYTES), *cs = ms + BK / 32 * TILE_N;
#pragma unroll
      for (int j = 0; j < PPT; ++j) {
        const int blk = p0 / 4 + (PPT >= 4 ? j / 4 : 0), q = PPT >= 4 ? j % 4 : p0 % 4 + j;
        const u32 m = ms[blk * TILE_N + my_n];
        half2 v[4];
        u32 pruned[4];
        q4s_expand(m, cs[2 * blk * TILE_N + my_n], cs[(2 * blk + 1) * TILE_N + my_n], q, table, v, pruned);
        const u32 broken = q4s_broken(m);
//$ if SG > 0 then
        half2 s2, nzs2;
        group_scale(stage, (p0 + j) * 8, my_n, s2, nzs2);
//$ end
        u32 o[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) o[e] = q4s_scale(v[e], s2, nzs2, pruned[e], broken);
        *reinterpret_cast<uint4 *>(b + piece<{{BT}}>(my_n, p0 + j)) = make_uint4(o[0], o[1], o[2], o[3]);
      }
//$ else
      // Expand this thread's words of the stage: word row wr of column my_n,
      // rows 8 wr .. 8 wr + 7, into piece (my_n, wr) of W^T.
      const u32 *ws = reinterpret_cast<const u32 *>(stage + X_BYTES);
#pragma unroll
      for (int j = 0; j < BK / 8 / WR_STEP; ++j) {
        const int wr = my_wr + j * WR_STEP;
        const u32 w = ws[wr * TILE_N + my_n];
        // codes 2e (low nibble of byte e) and 2e + 1 (high nibble) as one pair
        const u32 lo = w & 0x0f0f0f0fu;
//$ if BARE == 1 then
        // bare: the high nibble stays where it is, 16 q * 2^-24, and an exact
        // fp16 multiplication by 1/16 brings it down
        const u32 hi = w & 0xf0f0f0f0u;
        const half2 unit = __halves2half2(__float2half(1.f), __float2half(0.0625f));
        u32 v[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const u32 pr = prmt(lo, hi, 0x8480u + 0x0101u * e);  // bytes: lo[e], 0, hi[e], 0
          v[e] = q4_h2_bits(__hmul2(*reinterpret_cast<const half2 *>(&pr), unit));
        }
//$ else
        const u32 hi = (w >> 4) & 0x0f0f0f0fu;
        half2 s2, nzs2;
        group_scale(stage, wr * 8, my_n, s2, nzs2);
        u32 v[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          u32 pr = prmt(lo, hi, 0x8480u + 0x0101u * e) | 0x64006400u;  // (1024 + q, 1024 + q')
          v[e] = q4_h2_bits(q4_scale(*reinterpret_cast<const half2 *>(&pr), s2, nzs2));
        }
//$ end
        *reinterpret_cast<uint4 *>(b + piece<NB>(my_n, wr)) = make_uint4(v[0], v[1], v[2], v[3]);
      }
//$ end
      fence_to_async();    // the expansion and the stage's copies, for wgmma
      consumers_sync();    // ... of every consumer thread
      wgmma_fence();
#pragma unroll
      for (int mt = 0; mt < MW; ++mt) {
        const u64 da = smem_desc(stage), db = smem_desc(b);  // (+ offset / 16 below)
#pragma unroll
        for (int s = 0; s < BK / 16; ++s)
//$ if WN == 1 then
          wgmma(d[mt], da + step_at<TILE_M>((wg * MW + mt) * 64, s) / 16, db + step_at<NB>(0, s) / 16);
//$ else
          wgmma(d[mt], da + step_at<TILE_M>((wg * MW + mt) * 64, s) / 16, db + step_at<TILE_N>(wn * NB, s) / 16);
//$ end
      }
      wgmma_commit();
      wgmma_wait_one();  // the wgmmas of step i - 1 have finished: their stage is free
      if (i > 0) mbar_arrive(&empty[(i - 1) % STAGES]);
    }
    wgmma_wait_all();
#pragma unroll
    for (int mt = 0; mt < MW; ++mt) pin(d[mt]);
  }

  // Accumulators -> the finished tile in shared memory (over the pipeline)
  // -> y. Fragment: element 4j + h of m tile mt is row 16 wq + g + 8 (h / 2)
  // of the tile, column 8 j + 2 t + h % 2.
  __syncthreads();  // every wgmma and copy finished: the pipeline's memory is free
  float *c_s = reinterpret_cast<float *>(smem);
#pragma unroll
  for (int mt = 0; mt < MW; ++mt) {
    if (warp >= CONSUMERS / 32) break;  // (the loader warp has no accumulators)
    const int r0 = (wg * MW + mt) * 64 + 16 * wq + g;
//$ if BARE == 1 then
    // the row sums of x: columns TILE_N .. of the ones (all alike)
    const float xs0 = d[mt][TILE_N / 2], xs1 = d[mt][TILE_N / 2 + 2];
//$ end
#pragma unroll
    for (int j = 0; j < {{WN == 1 and "TILE_N" or "TNW"}} / 8; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
//$ if WN == 1 then
        const int c = 8 * j + 2 * t + h;
//$ else
        const int c = wn * TNW + 8 * j + 2 * t + h;
//$ end
        float v0 = d[mt][4 * j + h], v1 = d[mt][4 * j + 2 + h];
//$ if BARE == 1 then
        constexpr float UNBARE = 16777216.f;  // 2^24
        const float s = UNBARE * __half2float(scales[n0 + c]), z = __half2float(q4_zero(zeros, 0, n0 + c));
        v0 = s * (v0 - z * xs0);
        v1 = s * (v1 - z * xs1);
//$ end
        c_s[r0 * LDC + c] = v0;
        c_s[(r0 + 8) * LDC + c] = v1;
      }
  }
  __syncthreads();
  auto tile = [&](int r, int c) { return c_s[r * LDC + c]; };
{{ render(C.epilogue) }}
}
//$ if ACT_ORDER == 1 then
{{ render(C.gather_x) }}
//$ end
]==]

return T
