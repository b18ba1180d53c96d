-- q4s_imma: 16:32 sparse int4 weights (q4s) with per-channel scales, for
-- M <= 4, on the int8 tensor cores (mma.sync.m16n8k32, u8 x s8 -> s32).
--
-- Why: at small M the fp16 path (q4_decode) is bound by the integer pipe,
-- which moves every kept code to its row with one PRMT per pair of rows,
-- and one more for the pair's keep flags. As u8 operands four rows share a
-- register, so the same expansion takes half the PRMTs, and a code goes
-- into the mma as its own byte (no conversion to fp16 at all).
--
-- x goes in as three signed 7-bit digits of a 21-bit fixed-point value,
-- x * 2^(20 - E) rounded, where 2^E bounds the row's |x| over the rows of
-- K one warp takes: the products and int32 sums are exact, and the one rounding
-- is at most 2^-21 of the row's largest |x|. x is the mma's B: an n8 tile
-- holds two rows of x, column 3r + d digit d of row r (columns 6 and 7
-- are zero); the weights are its A, 16 columns of W a tile.
--
-- The k order is q4_decode's for q4s: the loop runs over units of four
-- 32-row blocks, lane 4g + t takes block t of a unit whole, eight rows
-- (a chunk) an mma, and reads its own mask and code words. Pruned rows are
-- 0 in the codes, and a second mma sums the digits over each column's
-- kept rows (B of keep flags), so the epilogue applies
-- y = s * (sum of x q - z * sum of x over the kept rows) once per column.
--
-- Grouped weights whose groups are whole units (128 rows, 256 ...) take
-- the same loop: a unit lies in one group, so its integer sums are
-- folded into fp32 totals with the group's scale and zero once the unit
-- is done, s * (sum of x q - z * sum of x over the kept rows), and start
-- again from zero (q4_decode's FOLD = 1 does the same in fp16).
local C = import("_q4common")

local function ceil_div(a, b) return (a + b - 1) // b end

local T = {
  name = "q4s_imma",
  formats = { "q4s" },
  priority = 5,  -- asked for a default before q4_decode, which takes what this does not
  params = {
    { "WARPS_N", { 1, 2 } },       -- warps side by side along N
    { "CW",      { 1, 2 } },       -- 32-column strips per warp
    { "WARPS_K", { 2, 4, 8, 16 } }, -- warps splitting the block's K range (16: see check)
    { "SPLIT_K", { 1, 2, 4, 8 } }, -- blocks splitting K, reduced in the epilogue
    { "UNROLL",  { 1, 2, 4 } },    -- units (four 32-row blocks) per warp per round
    { "PIPE",    { 0, 1 } },       -- rounds loaded ahead of the one being summed (2 and 3 never won)
    { "XTILES",  { 1, 2 } },       -- n8 tiles of x digits, two rows of x each
    { "COPIES",  { 8, 16 } },      -- copies of the expansion table (16: no bank conflicts)
  },
}

-- The registers a thread the family's loop needs (launch bounds never ask
-- for fewer: budgets forced lower spilled).
local REG_FLOOR = 96

local function units(s) return ceil_div(s.k // 32, 4) end
local function u_split(p, s) return ceil_div(units(s), p.SPLIT_K) end
local function tile_m(p) return 2 * p.XTILES end
local function tile_n(p) return 32 * p.CW * p.WARPS_N end

-- Shared memory, in this order: the warps' partial sums
-- ([WARPS_K][8 XTILES][TILE_N + 1] fp32), each warp's scale back from fixed
-- point for each row, a flag per column for a broken mask, the tile's
-- scales and zeros where they are per column (fp32, read in the prologue
-- so that the epilogue does not wait on global memory after the loop;
-- grouped weights apply theirs in the loop), the expansion table (256
-- entries of 8 bytes in COPIES copies: with 16, a half warp's 8-byte
-- lookups meet no bank conflict), then the digits of x, 3 bytes per row
-- of K and row of x the block holds ([rows][3][rows of a split + 8]: a
-- row 8 bytes past a multiple of 128 moves each digit column g of an
-- mma's B two banks on, so it reads in two wavefronts; unpadded, all six
-- columns fall on the same eight banks, six wavefronts).
local function red_smem(p) return p.WARPS_K * 8 * p.XTILES * (tile_n(p) + 1) * 4 end
local function col_words(s) return s.group_size < s.k and 1 or 3 end  -- per column: flag (scale, zero)
local function fixed_smem(p, s)
  return red_smem(p) + 4 * p.WARPS_K * tile_m(p) + 4 * col_words(s) * tile_n(p) + 256 * p.COPIES * 8
end
local function digits_row(p, s) return 3 * (u_split(p, s) * 128 + 8) end

function T.meta(p, s)
  return {
    threads = 32 * p.WARPS_N * p.WARPS_K,
    smem = fixed_smem(p, s), smem_row = digits_row(p, s),
    tile_m = tile_m(p), tile_n = tile_n(p), split_k = p.SPLIT_K,
    split_cluster = (p.SPLIT_K > 1 and s.arch >= 90) and 1 or 0,
    -- registers for the occupancy its grid can use (docs/TEMPLATES.md)
    min_blocks = C.min_blocks(32 * p.WARPS_N * p.WARPS_K, ceil_div(s.n, tile_n(p)) * p.SPLIT_K, REG_FLOOR, s.sms),
    -- two x tiles only once one does not hold M
    m_min = p.XTILES == 1 and 1 or 3, m_max = tile_m(p),
  }
end

function T.check(p, s)
  if s.arch < 80 then return false, "mma.sync.m16n8k32 (int8) needs sm_80" end
  if s.group_size < s.k and not C.unit_groups(s) then
    return false, "grouped weights: groups of whole 128-row units only (each unit's sums folded in one group)"
  end
  if s.n % 4 ~= 0 or s.k % 32 ~= 0 then return false, "needs N % 4 == 0 and K % 32 == 0" end
  local m = T.meta(p, s)
  if m.smem + m.smem_row * m.tile_m > C.smem_max(s.arch) then return false, "shared memory over the limit" end
  -- (three 16-byte words per strip and unit: mask and both code words)
  if p.UNROLL * p.CW * (1 + p.PIPE) > 4 then return false, "too many loads in flight for the registers" end
  -- More than 8 warps only as one block an SM, each block a whole strip
  -- along all of K: the warps share one table and need no split-K.
  if p.WARPS_N * p.WARPS_K > 8 and (p.WARPS_N > 1 or p.SPLIT_K > 1 or p.UNROLL > 1 or p.PIPE > 0
                                    or p.XTILES > 1 or ceil_div(s.n, tile_n(p)) > s.sms) then
    return false, "over 8 warps: only WARPS_N = 1, SPLIT_K = 1, UNROLL = 1, PIPE = 0, XTILES = 1, one block an SM"
  end
  if units(s) < p.SPLIT_K * p.WARPS_K and (p.SPLIT_K > 1 or p.WARPS_K > 2) then
    return false, "fewer units of K than warps along K"
  end
  return C.fills_gpu(p, s, m.tile_n, units(s))
end

-- Untuned: one warp of 32 columns along N, four along K, one unit a
-- round, split-K until 256 blocks (C.default_split). On the H200 that came
-- within 4 % of the tuned best on average over the llama-13b shapes at
-- M = 1 (9 % at most; docs/BENCHMARKS.md, 2026-12-04 seventh), where the
-- earlier default (eight warps along K, two units a round, a round loaded
-- ahead) took 1.23x to 1.37x. Grouped weights whose groups are whole
-- units take the same: on the H200 at M = 1, g128, it took 0.75x to 0.96x
-- of q4_decode's folded default's time over five shapes, at M = 2 0.81x to
-- 0.90x but 1.04x at 4096 x 4096 (docs/BENCHMARKS.md, 2026-12-06 second).
-- A wave is five blocks an SM (what REG_FLOOR registers a thread allow) of
-- the GPU's s.sms. Where the 32-column strips fill whole waves and spill a
-- few blocks into one more (an eighth of a wave at most), those run after
-- the rest on a nearly idle GPU: there the strips are 64 columns wide
-- (CW = 2), half the blocks. On the H100 at 22016 x 4096 (688 strips, 28 past
-- one wave) that took 0.86x to 0.90x of the time at M = 1 and 2,
-- per-channel and g128; at 28672 x 4096 and 27648 x 5120 (236 and 204
-- past) 1.00x to 1.08x, so they keep 32 (docs/BENCHMARKS.md, 2026-12-06
-- third). Where there are more strips than three quarters of the GPU's SMs
-- (s.sms) but no more than one an SM (N 3169..4224 on 132 SMs), split-K
-- would take two blocks a strip and a reduction: there each strip is one
-- block of 16 warps along K instead (a strip more than the SMs would take
-- a second wave), with 16 table copies, where K gives every warp two units
-- (K >= 4096). On the H100 at M = 1 and 2, per-channel and g128, that took
-- 0.80x to 0.83x of the split default's time at 4096 x 11008 and
-- 4096 x 14336 and 0.81x to 0.91x at 4096 x 4096 and 3200 x 5120 (two runs
-- multiplied: 16 or 24 warps with 8 copies against split-K, then 16 warps
-- with 16 copies, the tuner's pick at 4096 x 11008, against those;
-- docs/BENCHMARKS.md, 2026-12-06 fourth). Nothing for M > 2, other groups
-- or pre-sm_80 GPUs: q4_decode serves them.
local function default_of(s, cw)
  local p = { WARPS_N = 1, CW = cw, WARPS_K = 4, SPLIT_K = 1, UNROLL = 1, PIPE = 0, XTILES = 1, COPIES = 8 }
  C.default_split(p, s, units(s), 256)
  if T.check(p, s) then return p end
  return nil
end
local function one_block_a_strip(s)
  local p = { WARPS_N = 1, CW = 1, WARPS_K = 16, SPLIT_K = 1, UNROLL = 1, PIPE = 0, XTILES = 1, COPIES = 16 }
  if units(s) >= 2 * p.WARPS_K and T.check(p, s) then return p end
  return nil
end
function T.default(s, m)
  if m > 2 or s.arch < 80 then return nil end
  local strips = ceil_div(s.n, 32)
  if 4 * strips > 3 * s.sms and strips <= s.sms then
    local p = one_block_a_strip(s)
    if p then return p end
  end
  local wave = s.sms * (65536 // (REG_FLOOR * 128))  -- blocks of 128 threads
  local wide = strips > wave and (strips - 1) % wave < wave // 8
  return wide and default_of(s, 2) or default_of(s, 1)
end

-- 16-byte pieces of a row of x per lane in the prologue (see source), and
-- whether they stay in registers between its two passes (a few of them)
-- or are read twice.
local function x_pieces(p, s) return ceil_div(ceil_div(u_split(p, s), p.WARPS_K) * 16, 32) end

function T.constants(p, s)
  return { TEMPLATE = "q4s_imma", XP = x_pieces(p, s), HELD = x_pieces(p, s) <= 8 and 1 or 0 }
end

T.source = [==[
{{ render(C.prelude, { GATHERS = 0 }) }}
constexpr int WARPS_N = {{WARPS_N}}, WARPS_K = {{WARPS_K}}, CW = {{CW}}, UNROLL = {{UNROLL}}, XTILES = {{XTILES}};
constexpr int KB = K / 32;                 // 32-row blocks of K
constexpr int UNITS = (KB + 3) / 4;        // the loop's units: four blocks, lane t taking block t
constexpr int U_SPLIT = (UNITS + SPLIT_K - 1) / SPLIT_K, KB_SPLIT = 4 * U_SPLIT;
constexpr int KX = 32 * KB_SPLIT;          // rows of K (and digits of x per row and digit) a block holds
constexpr int KXP = KX + 8;                // stride of the digits' rows (see the shared-memory layout)
constexpr int STEP = WARPS_K * UNROLL;     // units a round for the block: warp wk's are wk + WARPS_K i
constexpr int BCOLS = 8 * XTILES;          // columns of B: 3r + d is digit d of row r, two rows a tile
constexpr int COPIES = {{COPIES}};  // copies of the expansion table, lane l reading copy l % COPIES

{{ render(C.loads) }}
{{ render(C.sparse_codes) }}

// D += A * B for one 16x8x32 tile: A u8 (the codes or keep flags), B s8 (digits of x).
__device__ __forceinline__ void imma(int (&d)[4], const u32 (&a)[4], uint2 b) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y));
}

// Entry m8 of the expansion table, for eight rows whose mask byte is m8:
// two PRMT selectors, rows 0..3 and rows 4..7, over the split of the
// chunk's window (q4s_source_nibbles' low and high halves), with the
// window's counts in their top bytes (q4s_counts_word0/1), which PRMT
// does not read. The copies are alike, so one 16-byte store writes two;
// they are stored staggered by bank: in each store the eight lanes of a
// quarter warp write eight different 16-byte bank groups (in copy order
// they would share one or two).
__device__ __forceinline__ void build_table(uint2 *table) {
  for (u32 m8 = threadIdx.x; m8 < 256; m8 += THREADS) {
    const u32 nib = q4s_source_nibbles(m8);
    const u32 sel0 = (nib & 0xffffu) | q4s_counts_word0(m8), sel1 = nib >> 16 | q4s_counts_word1(m8);
    const uint4 two = make_uint4(sel0, sel1, sel0, sel1);
    uint4 *const pairs = reinterpret_cast<uint4 *>(table) + m8 * (COPIES / 2);
    const u32 stagger = m8 * COPIES / 16;
#pragma unroll
    for (u32 c = 0; c < COPIES / 2; ++c) pairs[(c + stagger) % (COPIES / 2)] = two;
  }
}

// Entry m8 of this lane's copy of the table: the multiply by the entry's
// stride runs on the FMA pipe (an IMAD, which the compiler would make an
// integer-pipe shift), the load is plain C++ (ordered by the barriers).
__device__ __forceinline__ uint2 table_entry(const uint2 *copy, u32 m8) {
  u32 off;
  asm("mad.lo.u32 %0, %1, %2, 0;" : "=r"(off) : "r"(m8), "n"(COPIES * 8));
  return *reinterpret_cast<const uint2 *>(reinterpret_cast<const char *>(copy) + off);
}

{{ render(C.signature) }}
{
  extern __shared__ float red[];  // see the template's shared-memory layout
{{ render(C.thread_place) }}
  // [WARPS_K][TILE_M]: each warp's 2^(E - 20) per row of x, NaN for a row not finite
  // rows of red a word longer than the tile: the warps' stores of their
  // sums then meet two-way bank conflicts, not four-way
  constexpr int RED_STRIDE = TILE_N + 1;
  float *const row_scale = red + WARPS_K * BCOLS * RED_STRIDE;
  u32 *const bad_col = reinterpret_cast<u32 *>(row_scale + WARPS_K * TILE_M);  // [TILE_N]
//$ if GROUP_SIZE == K then
  float *const col_scale = reinterpret_cast<float *>(bad_col + TILE_N);  // [TILE_N]
  float *const col_zero = col_scale + TILE_N;                             // [TILE_N]
  uint2 *const table = reinterpret_cast<uint2 *>(col_zero + TILE_N);     // [256][COPIES]
//$ else
  uint2 *const table = reinterpret_cast<uint2 *>(bad_col + TILE_N);      // [256][COPIES]
//$ end
  signed char *const digits = reinterpret_cast<signed char *>(table + 256 * COPIES);  // [rows][3][KXP]
  const int rows = min(TILE_M, M - m0);  // rows of x this block holds (digits of rows past M: none)

  // This thread's block of unit un is block t of it; a round is UNROLL
  // units, wv[u][c] the masks and code words 0 and 1 of its four columns
  // in strip c.
//$ if GROUP_SIZE < K then
  // gv[u][c]: their scales and zeros in the unit's group.
  auto fetch = [&](int un0, uint4 (&wv)[UNROLL][CW][3], uint2 (&gv)[UNROLL][CW][2]) {
//$ else
  auto fetch = [&](int un0, uint4 (&wv)[UNROLL][CW][3]) {
//$ end
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int kb = 4 * (un0 + u * WARPS_K) + t;
#pragma unroll
      for (int c = 0; c < CW; ++c) {
        const bool load = kb < kb_end && col_ok[c];
        // past the end the registers keep what they held: those rows of K
        // meet zero digits, and those columns are never stored
        load_stream_keep(wv[u][c][0], &mask[(size_t)kb * N + col[c]], load);
        load_stream_keep(wv[u][c][1], &qweight[(size_t)(2 * kb) * N + col[c]], load);
        load_stream_keep(wv[u][c][2], &qweight[(size_t)(2 * kb + 1) * N + col[c]], load);
//$ if GROUP_SIZE < K then
        // The unit's group, whatever this lane's block: the lane's sums
        // (columns 2t, 2t + 1 of B) cover all four blocks of the unit.
        const int unit0 = kb - t;
        const bool gload = unit0 < kb_end && col_ok[c];
        gv[u][c][0] = load_small(&scales[(size_t)(unit0 * 32 / GROUP) * N + col[c]], gload);
//$ if SYMMETRIC == 0 then
        gv[u][c][1] = load_small(&zeros[(size_t)(unit0 * 32 / GROUP) * N + col[c]], gload);
//$ end
//$ end
      }
    }
  };

  // x into digits, each warp for the units it takes, with its own scale
  // per row (applied to its own partial sums in the epilogue): no warp
  // waits for another but at the one barrier below, which the expansion
  // table needs anyway. First the largest |x| of each row over the warp's
  // rows of K, compared as fp16 bit patterns less the sign (ordered as the
  // values; Inf and NaN above every finite value). A lane's pieces of a
  // row stay in its registers for the digits where they are few (else it
  // reads them again).
  const int k0 = kb_begin * 32, kn = (kb_end - kb_begin) * 32;
  constexpr int XP = {{XP}};      // 16-byte pieces of a row of x per lane: 16 a unit, ceil(U_SPLIT / WARPS_K) units
  constexpr bool HELD = {{HELD}};  // (unrolled, so that they stay in registers)
  // piece j of this lane, p = lane + 32 j: rows 8 (p % 16) .. + 7 of unit wk + WARPS_K (p / 16)
  auto piece_k = [&](int j) {
    const int p = lane + 32 * j;
    return (wk + WARPS_K * (p / 16)) * 128 + 8 * (p % 16);
  };
  auto x_piece = [&](int r, int j) {
    const int k = piece_k(j);
    return r < rows && k < kn ? __ldg(reinterpret_cast<const uint4 *>(x + (size_t)(m0 + r) * K + k0 + k))
                              : make_uint4(0u, 0u, 0u, 0u);
  };
  // One row: its pieces loaded (held: into `held`), the warp's largest
  // |x| over them and so the row's scale, then the digits, eight rows of K
  // a piece (the warps side by side along N share them out): v = x *
  // 2^(20 - E) rounded (|v| <= 2^20; the scaling is exact, and adding
  // 1.5 * 2^23 rounds it into the low bits of the float) as v = d0 2^14 +
  // d1 2^7 + d2, d0 = v >> 14 in [-64, 64], d1 and d2 in [0, 127]. Rows of
  // K past the block's are zeros.
  uint4 held[HELD ? XP : 1];
  auto load_row = [&](int r) {
    if (HELD) {
#pragma unroll
      for (int j = 0; j < XP; ++j) held[HELD ? j : 0] = x_piece(r, j);
    }
  };
  auto row_digits = [&](int r) {
    u32 big = 0;
#pragma unroll {{HELD == 1 and "" or "4"}}
    for (int j = 0; j < XP; ++j) {
      const uint4 v = HELD ? held[HELD ? j : 0] : x_piece(r, j);
      const u32 h[4] = {v.x & 0x7fff7fffu, v.y & 0x7fff7fffu, v.z & 0x7fff7fffu, v.w & 0x7fff7fffu};
#pragma unroll
      for (int i = 0; i < 4; ++i) big = max(big, max(h[i] & 0xffffu, h[i] >> 16));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) big = max(big, __shfl_xor_sync(0xffffffffu, big, o));
    int e = 0;
    frexpf(__half2float(__ushort_as_half((unsigned short)big)), &e);  // |x| < 2^e
    // 2^(20 - E), and NaN for a row that is not finite (it comes out NaN)
    const float up = big < 0x7c00u ? ldexpf(1.f, 20 - e) : __int_as_float(0x7fffffff);
    if (lane == 0 && wn == 0) row_scale[wk * TILE_M + r] = 1.f / up;
#pragma unroll {{HELD == 1 and "" or "4"}}
    for (int j = 0; j < XP; ++j) {
      const int k = piece_k(j);
      if (j % WARPS_N != wn) continue;
      if (k >= KX) break;
      const uint4 v = HELD ? held[HELD ? j : 0] : x_piece(r, j);
      const half *h = reinterpret_cast<const half *>(&v);
      // b: the bits of 1.5 * 2^23 + v, whose low 22 bits are v's (two's
      // complement). Byte 0 of b holds d2 (and one bit above it), byte 1 of
      // b << 1 d1 (likewise), byte 2 of b << 2 d0; four rows' bytes go into
      // one word with three PRMTs.
      u32 b[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) b[i] = __float_as_uint(__fmaf_rn(__half2float(h[i]), up, 12582912.f));
      auto pack = [&](int i, int shift, u32 sel) {
        return prmt(prmt(b[i] << shift, b[i + 1] << shift, sel), prmt(b[i + 2] << shift, b[i + 3] << shift, sel), 0x5410u);
      };
      u32 d[3][2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        d[0][i] = pack(4 * i, 2, 0x0062u);
        d[1][i] = pack(4 * i, 1, 0x0051u) & 0x7f7f7f7fu;
        d[2][i] = pack(4 * i, 0, 0x0040u) & 0x7f7f7f7fu;
      }
#pragma unroll
      for (int dd = 0; dd < 3; ++dd)
        *reinterpret_cast<uint2 *>(&digits[(r * 3 + dd) * KXP + k]) = make_uint2(d[dd][0], d[dd][1]);
    }
  };
  // The first 1 + PIPE rounds of weights go out first, and the tile's
  // scales and zeros, then (once the kernel before has finished) x's first
  // row, while the block prepares x and the table. (A load left out keeps
  // what the registers held: at first zero codes and masks of 16 rows,
  // which pass the loop's test of every mask word read, as the words
  // loaded before.)
  constexpr int ROUNDS = 1 + {{PIPE}};  // register sets, one a round in flight
  uint4 w[ROUNDS][UNROLL][CW][3] = {};
//$ if GROUP_SIZE < K then
  uint2 gs[ROUNDS][UNROLL][CW][2] = {};  // (zeros stay 0 for symmetric weights: see the fold)
//$ end
#pragma unroll
  for (int r = 0; r < ROUNDS; ++r)
#pragma unroll
    for (int u = 0; u < UNROLL; ++u)
#pragma unroll
      for (int c = 0; c < CW; ++c) w[r][u][c][0] = make_uint4(0xffffu, 0xffffu, 0xffffu, 0xffffu);
#pragma unroll
  for (int r = 0; r < ROUNDS; ++r) fetch(u_begin + wk + r * STEP, w[r]{{GROUP_SIZE < K and ", gs[r]" or ""}});
//$ if GROUP_SIZE == K then
  // The tile's scales and zeros on their way now (thread i: column i,
  // THREADS >= TILE_N), into shared memory just before the barrier.
  static_assert(THREADS >= TILE_N, "a thread per column of the tile");
{{ render(C.tile_scales_load) }}
//$ if SYMMETRIC == 1 then
  const half my_zero = __float2half(8.f);
//$ else
  const int my_n = blockIdx.x * TILE_N + threadIdx.x;
  const half my_zero = threadIdx.x < TILE_N && my_n < N ? zeros[my_n] : __float2half(0.f);  // (fp16 until stored: see C.tile_scales_load)
//$ end
//$ end
  q4_wait_for_prior();
  load_row(0);
  build_table(table);
  row_digits(0);
  for (int r = 1; r < rows; ++r) {
    load_row(r);
    row_digits(r);
  }
  if (threadIdx.x < TILE_N) bad_col[threadIdx.x] = 0;
//$ if GROUP_SIZE == K then
{{ render(C.tile_scales_store) }}
  if (threadIdx.x < TILE_N) col_zero[threadIdx.x] = __half2float(my_zero);
//$ end
  __syncthreads();

  // B fragments come from lane 4g + t's digit column g (3r + d of each x
  // tile): rows k .. k + 7 of its row and digit, as 8 bytes (zeros for
  // columns 6 and 7, and rows past M).
  const signed char *my_digits[XTILES];
  bool my_row[XTILES];
#pragma unroll
  for (int xt = 0; xt < XTILES; ++xt) {
    my_digits[xt] = digits + ((2 * xt + g / 3) * 3 + g % 3) * KXP;
    my_row[xt] = g < 6 && 2 * xt + g / 3 < rows;
  }
  const uint2 *const my_table = table + lane % COPIES;  // this lane's copy of the table

  int acc[CW][2][XTILES][4] = {}, kacc[CW][2][XTILES][4] = {};
//$ if GROUP_SIZE < K then
  float facc[CW][2][XTILES][4] = {};  // the units' sums, each with its group's scale and zero
//$ end
  u32 bad[CW][4] = {};  // per column: non-zero once a mask word without 16 bits was read
  // One round: the units of wv from unit un0 on, into the sums.
//$ if GROUP_SIZE < K then
  auto consume = [&](const uint4 (&wv)[UNROLL][CW][3], const uint2 (&gv)[UNROLL][CW][2], int un0) {
//$ else
  auto consume = [&](const uint4 (&wv)[UNROLL][CW][3], int un0) {
//$ end
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      if (un0 + u * WARPS_K >= u_end) break;
      const int kb = 4 * (un0 + u * WARPS_K) + t;
      const int kx = (kb - kb_begin) * 32;  // this thread's block in the digits
      const bool in_k = kb < kb_end;
      u32 count0[CW][4], count3[CW][4];     // per column: 4 * kept rows of chunks 0 and 3
      // chunks in the order 0, 1, 3, 2: the count of chunk 0 places chunk
      // 1's window and that of chunk 3 chunk 2's, each soon after it is read
#pragma unroll
      for (int qi = 0; qi < 4; ++qi) {
        const int q = qi < 2 ? qi : 5 - qi;
        uint2 b[XTILES];
#pragma unroll
        for (int xt = 0; xt < XTILES; ++xt)
          b[xt] = my_row[xt] && in_k ? *reinterpret_cast<const uint2 *>(my_digits[xt] + kx + 8 * q)
                                     : make_uint2(0u, 0u);
#pragma unroll
        for (int c = 0; c < CW; ++c) {
          const u32 mw[4] = {wv[u][c][0].x, wv[u][c][0].y, wv[u][c][0].z, wv[u][c][0].w};
          const u32 c0[4] = {wv[u][c][1].x, wv[u][c][1].y, wv[u][c][1].z, wv[u][c][1].w};
          const u32 c1[4] = {wv[u][c][2].x, wv[u][c][2].y, wv[u][c][2].z, wv[u][c][2].w};
          // rows 0..3 and 4..7 of the chunk, codes and keep flags, for the four columns
          u32 lo[4], hi[4], klo[4], khi[4];
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const uint2 e = table_entry(my_table, prmt(mw[j], 0u, 0x4440u + q));
            if (q == 0) count0[c][j] = q4s_count_field(e.x);
            if (q == 3) count3[c][j] = q4s_count_field(e.x);
            u32 even, odd;
            q4s_split(q4s_window(c0[j], c1[j], q, q == 1 ? count0[c][j] : count3[c][j], q4s_count_field(e.y)),
                      even, odd);
            lo[j] = prmt(even, odd, e.x);
            hi[j] = prmt(even, odd, e.y);
            klo[j] = prmt(0x01010101u, 0x01010101u, e.x);
            khi[j] = prmt(0x01010101u, 0x01010101u, e.y);
            if (q == 0) bad[c][j] |= __popc(mw[j]) ^ 16u;  // (rows past K: a word already tested)
          }
          // tile i: A rows g and g + 8 are columns 2i and 2i + 1 of the four
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            const u32 a[4] = {lo[2 * i], lo[2 * i + 1], hi[2 * i], hi[2 * i + 1]};
            const u32 ak[4] = {klo[2 * i], klo[2 * i + 1], khi[2 * i], khi[2 * i + 1]};
#pragma unroll
            for (int xt = 0; xt < XTILES; ++xt) {
              imma(acc[c][i][xt], a, b[xt]);
              imma(kacc[c][i][xt], ak, b[xt]);
            }
          }
        }
      }
//$ if GROUP_SIZE < K then
      // The unit lies in one group: its sums into the totals, s (q - z) . x
      // in the digits' units, and back to zero for the next unit. (The
      // integer sums are exact and below 2^24, so exact as floats too.)
#pragma unroll
      for (int c = 0; c < CW; ++c) {
        const half *s4 = reinterpret_cast<const half *>(&gv[u][c][0]);
//$ if SYMMETRIC == 0 then
        const half *z4 = reinterpret_cast<const half *>(&gv[u][c][1]);
//$ end
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int j = 2 * i + e / 2;  // element e of tile i: column j of this thread's four
            const float sj = __half2float(s4[j]), nzj = {{SYMMETRIC == 1 and "-8.f" or "-__half2float(z4[j])"}};
#pragma unroll
            for (int xt = 0; xt < XTILES; ++xt) {
              int &a = acc[c][i][xt][e], &ka = kacc[c][i][xt][e];
              facc[c][i][xt][e] = fmaf(sj, fmaf(nzj, (float)ka, (float)a), facc[c][i][xt][e]);
              a = 0;
              ka = 0;
            }
          }
      }
//$ end
    }
  };
  // The register sets take turns (no copies between them): a round is
  // summed while the next PIPE are on their way, and its registers then
  // load the round ROUNDS on.
  for (int un0 = u_begin + wk; un0 < u_end; un0 += ROUNDS * STEP) {
#pragma unroll
    for (int r = 0; r < ROUNDS; ++r) {
      if (un0 + r * STEP >= u_end) break;
//$ if GROUP_SIZE < K then
      consume(w[r], gs[r], un0 + r * STEP);
      fetch(un0 + (r + ROUNDS) * STEP, w[r], gs[r]);
//$ else
      consume(w[r], un0 + r * STEP);
      fetch(un0 + (r + ROUNDS) * STEP, w[r]);
//$ end
    }
  }

  // Element e of tile i: column 4g + 2i + e / 2 of the strip, B column
  // 2t + e % 2 of each x tile. Each column's zero comes in here, the sums
  // over the kept rows times it taken from the codes' sums.
//$ if GROUP_SIZE < K then
  // (Grouped: the totals have their scales and zeros already.)
//$ end
#pragma unroll
  for (int c = 0; c < CW; ++c) {
//$ if GROUP_SIZE == K then
    const float *const z4 = col_zero + wn * 32 * CW + 32 * c + 4 * g;  // this thread's four columns
//$ end
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int xt = 0; xt < XTILES; ++xt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int cc = wn * 32 * CW + 32 * c + 4 * g + 2 * i + (e >> 1);
          red[(wk * BCOLS + 8 * xt + 2 * t + (e & 1)) * RED_STRIDE + cc] =
//$ if GROUP_SIZE < K then
              facc[c][i][xt][e];
//$ else
              (float)acc[c][i][xt][e] - z4[2 * i + (e >> 1)] * (float)kacc[c][i][xt][e];
//$ end
        }
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (bad[c][j]) bad_col[wn * 32 * CW + 32 * c + 4 * g + j] = 1;
  }
  __syncthreads();
  float *const epi_buf = red;  // (split clusters: the partial tile, after tile() has read red)
  // Row r of x is columns 3(r % 2) + d of x tile r / 2: its digits' sums
  // put together, the column's scale, and the row's scale back.
  auto tile = [&](int r, int c) {
    const int base = 8 * (r / 2) + 3 * (r % 2);
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < WARPS_K; ++i) {
      const float *p = red + (i * BCOLS + base) * RED_STRIDE + c;
      sum += row_scale[i * TILE_M + r] * (16384.f * p[0] + 128.f * p[RED_STRIDE] + p[2 * RED_STRIDE]);
    }
    if (bad_col[c]) return __int_as_float(0x7fffffff);  // a mask that broke the 16-of-32 rule
    return {{GROUP_SIZE < K and "sum;  // (grouped: scaled in the loop)" or "col_scale[c] * sum;"}}
  };
{{ render(C.epilogue) }}
}
]==]

return T
