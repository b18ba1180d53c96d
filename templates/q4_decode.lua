-- q4_decode: int4 matrix product for small M (decode steps), on the tensor
-- cores through mma.sync.m16n8k16 with the weights dequantized in registers.
--
-- Why this shape of kernel: at M <= 64 the product is bound by reading W, so
-- every thread streams 16-byte weight loads and the 4-bit codes never touch
-- shared memory. The mma's reduction index k may be permuted freely as long
-- as x and W agree, so each thread's fragment comes straight out of the one
-- word it loaded: lane 4g + t loads word row 4kb + t (rows 32kb + 8t .. +7)
-- of four neighbouring columns, and x is read in the matching order.
--
-- Sparse weights (q4s) take the same path with a different k order: the
-- loop runs over units of four 32-row blocks, and lane 4g + t takes all 32
-- rows of block t of the unit, so every lane loads its own mask and code
-- words (a block of four columns is 48 bytes) and expands them eight rows
-- at a time with q4s_expand; x is read in plain row order to match.
--
-- Per-channel dense weights go into the mma as bare codes: q * 2^-24, a
-- subnormal fp16 (exact, and multiplied exactly), so the loop spends an
-- AND on a pair of codes (q4_unpack_bare) and no dequantization
-- arithmetic; an mma against
-- ones sums x beside them, and the epilogue applies the column's scale and
-- zero once, y = s * (2^24 * sum - z * sum of x). Per-channel q4s does the
-- same with pruned rows as 0, and sums x over each column's kept rows
-- through a second mma whose B holds the keep flags. Grouped weights are
-- dequantized in registers, (q - z) * s in fp16, before the mma.
--
-- Grouped q4s whose groups are whole units (128 rows) may take the bare
-- path too, a unit at a time (FOLD = 1): the unit's sums of
-- bare codes and of x over the kept rows go into accumulators of their
-- own, folded into the totals with the group's scale and zero once the
-- unit is done. The expansion to fp16 and the masking of pruned rows,
-- most of q4s's instructions per weight, then go.
--
-- With XT = 1 (M <= 8) the roles turn round:
-- x is the mma's B, its 8 columns the rows of x, and the weights its A, 16
-- columns of W a tile, so no mma spends half its rows on absent rows of x.
local C = import("_q4common")

local function ceil_div(a, b) return (a + b - 1) // b end
-- (XG and PF exist for act-order weights only: elsewhere only their 0 is enumerated)
local function act_order(s) return s.act_order end
-- (FOLD for grouped q4s whose groups are whole units of 128 rows)
local unit_groups = C.unit_groups

local T = {
  name = "q4_decode",
  formats = { "q4", "q4s" },
  priority = 10,
  params = {
    { "WARPS_N", { 1, 2, 4 } },    -- warps side by side along N
    { "CW",      { 1, 2, 4 } },    -- 32-column strips per warp (x fragments shared by all)
    { "WARPS_K", { 2, 4, 8 } },    -- warps splitting the block's K range
    { "SPLIT_K", { 1, 2, 4, 8 } }, -- blocks splitting K, reduced in the epilogue
    { "M_TILES", { 1, 2, 4 } },    -- 16-row tiles of x per block
    { "UNROLL",  { 1, 2, 4, 8 } }, -- units of K (one block; q4s: four) per warp per round
    { "PIPE",    { 0, 1 } },       -- 1: load round r + 1 while computing round r
    { "ORDER",   { 0, 1 } },       -- a warp's units in a round: 0 WARPS_K apart, 1 consecutive
    -- act-order x: into shared memory, 0 gathered from global, 1 from rows copied in; 2 gathered
    -- in the loop; 3 gathered ahead of the kernel (C.gather_x), which then runs as for dense weights
    { "XG",      { 0, 1, 2, 3 }, when = act_order },
    { "XT",      { 0, 1 } },       -- M <= 8: 1 puts x in the mma's B (8 rows) and W in its A
    { "PF",      { 0, 2, 4 }, when = act_order }, -- XG = 1: rounds after the first prefetched into L2 before the prologue
    -- grouped q4s: 1 multiplies bare codes and folds each unit's sums into the group's scale and zero
    { "FOLD",    { 0, 1 }, when = unit_groups, optional = true },
  },
}

-- Whether the kernel gathers act-order x through perm itself (XG = 0 to 2;
-- with XG = 3 it takes x gathered ahead, C.gather_x).
local function gathers(p, s) return s.act_order and p.XG ~= 3 end

-- Units of K the loop runs over: 32-row blocks, four at a time for q4s.
local function units(s)
  return s.format == "q4s" and ceil_div(s.k // 32, 4) or s.k // 32
end

-- Units per split-K slice; with ORDER = 1 a multiple of UNROLL, so each
-- round of a warp starts at a multiple of UNROLL (the source's U_SPLIT).
local function u_split(p, s)
  local u = ceil_div(units(s), p.SPLIT_K)
  return p.ORDER == 1 and ceil_div(u, p.UNROLL) * p.UNROLL or u
end

-- Units sharing one group of scales and zeros (per lane for q4s, whose
-- lanes take one block of a unit each): consecutive units (ORDER = 1)
-- pay off only where this is 2 or more.
local function group_units(s)
  local rows = s.format == "q4s" and 128 or 32
  if s.group_size >= s.k or s.group_size % rows ~= 0 then return 1 end
  return s.group_size // rows
end

-- Per-channel weights factor their scale and zero out of the sum: the
-- loop multiplies x by the bare codes and keeps the sum of x (for q4s, of
-- x over each column's kept rows), and the epilogue applies
-- s * (sum - z * sum of x) once per column (see source).
local function factored(s) return s.group_size >= s.k end
-- Rows of x a block takes: 16 per m tile, 8 with x as the mma's B (XT);
-- its columns, CW strips of 32 a warp.
local function tile_m(p) return p.XT == 1 and 8 or 16 * p.M_TILES end
local function tile_n(p) return 32 * p.CW * p.WARPS_N end
-- The partial sums of the block's warps along K, [WARPS_K][TILE_M][TILE_N + 1] fp32
-- (rows one word longer than the tile: see the source's RED_STRIDE); with
-- pad = 0, the bytes of the sums themselves, less that padding.
local function red_smem(p, pad) return p.WARPS_K * tile_m(p) * (tile_n(p) + (pad or 1)) * 4 end
-- Per-channel weights with XT = 1: the tile's scales, loaded at the start
-- and kept here for the epilogue ([TILE_N] fp32).
local function cols_smem(p, s) return (factored(s) and p.XT == 1) and 4 * tile_n(p) or 0 end
local function sx_smem(p, s)
  return (factored(s) and s.format == "q4" and p.XT == 0) and p.WARPS_K * 16 * p.M_TILES * 4 or 0
end

-- Act-order weights: the block's rows of x, gathered once through perm into
-- shared memory ([TILE_M][rows of a split] fp16), so the loop reads them as
-- plain 16-byte vectors. XG = 2 keeps none there: the loop gathers each
-- piece of x from global memory (L1 and L2) as it goes, slower but for any
-- K, where even an eighth of it would not fit (K = 28672 on sm_86).
local function gathered_x(p, s) return tile_m(p) * u_split(p, s) * 32 * 2 end
local function x_smem(p, s)
  if not s.act_order or p.XG ~= 0 then return 0 end  -- (XG = 1: all of it per row, smem_row)
  return gathered_x(p, s)
end

-- XG = 1: shared memory per row of x (gathered and whole), and the rows an
-- XG = 1 block can hold on this architecture, 8 at most (M <= 8).
local function xg_row(p, s) return 2 * (u_split(p, s) * 32 + s.k) end
local function xg_rows(p, s)
  local fixed = red_smem(p) + sx_smem(p, s) + x_smem(p, s)
  return math.max(1, math.min(8, (C.smem_max(s.arch) - fixed) // xg_row(p, s)))
end

-- Sparse weights go into the mma as bare codes where their scale and zero
-- come in after the sum: per channel, or per unit with FOLD = 1.
local function bare(p, s) return s.format == "q4s" and (factored(s) or p.FOLD == 1) end
-- The expansion table and one flag per column of the tile for a mask
-- that breaks the format. The table has 256 entries, in copies that keep
-- a warp's lookups free of bank conflicts (see _q4common.lua): one word an
-- entry, 32 copies; for bare codes four words, 8 copies.
local function q4s_copies(p, s) return bare(p, s) and 8 or 32 end
local function sparse_smem(p, s)
  if s.format ~= "q4s" then return 0 end
  return 256 * q4s_copies(p, s) * (bare(p, s) and 16 or 4) + tile_n(p) * 4
end

-- Whether XG = 0's gathered x for p's tile fits in shared memory beside the
-- rest with K split eight ways (XG = 2 exists only where it does not).
local function x_fits_split(p, s)
  local q = {}
  for k, v in pairs(p) do q[k] = v end
  q.SPLIT_K = 8
  return red_smem(q) + sx_smem(q, s) + cols_smem(q, s) + gathered_x(q, s) <= C.smem_max(s.arch)
end

function T.meta(p, s)
  return {
    threads = 32 * p.WARPS_N * p.WARPS_K,
    smem = red_smem(p) + sx_smem(p, s) + cols_smem(p, s) + x_smem(p, s) + sparse_smem(p, s),
    smem_row = p.XG == 1 and xg_row(p, s) or 0,
    tile_m = tile_m(p), tile_n = tile_n(p), split_k = p.SPLIT_K,
    -- split-K on sm_90: the blocks of a tile sum their partials as one
    -- cluster (not for act-order weights, whose blocks, heavy in shared
    -- memory, were slower so: a block waiting for its cluster holds its SM)
    split_cluster = (p.SPLIT_K > 1 and s.arch >= 90 and not gathers(p, s)) and 1 or 0,
    -- more m tiles only pay off once M fills them
    -- (XT = 1 is the kernel for M <= 8: it was faster for every shape measured)
    m_min = p.M_TILES > 1 and 8 * p.M_TILES + 1 or p.XT == 0 and 9 or 1,
    m_max = p.XG == 1 and xg_rows(p, s) or p.XT == 1 and 8 or 32 * p.M_TILES,
  }
end

-- What any launch needs: the instructions, the shapes' divisibility, shared
-- memory and registers.
local function valid(p, s)
  if s.arch < 80 then return false, "mma.sync.m16n8k16 needs sm_80" end
  if s.n % 4 ~= 0 or s.k % 32 ~= 0 then return false, "needs N % 4 == 0 and K % 32 == 0" end
  if s.format == "q4s" and s.act_order then return false, "sparse weights have no act-order" end
  if p.XT == 1 and p.M_TILES ~= 1 then return false, "XT=1: one m tile" end
  local m = T.meta(p, s)
  if red_smem(p, 0) > 64 * 1024 then return false, "reduction buffer over 64 KB" end
  if m.smem + m.smem_row * math.min(m.tile_m, m.m_max) > C.smem_max(s.arch) then
    return false, "shared memory over the limit"
  end
  -- registers for loads in flight (16-byte loads per unit: weights plus
  -- x rows; for q4s three words per block and four pieces of x per row),
  -- twice with PIPE
  local xr = (p.M_TILES == 1 and p.XT == 0) and 2 or 1
  local per_unit = s.format == "q4s" and p.CW * 3 + xr * 4 or p.CW + xr
  if p.UNROLL * per_unit * (1 + p.PIPE) > 24 then
    return false, "too many loads in flight for the registers"
  end
  if s.format ~= "q4s" and p.UNROLL == 1 then return false, "q4: one block per round is too little in flight" end
  if p.M_TILES * p.CW > 4 then return false, "over 64 accumulators per thread" end
  if p.WARPS_N * p.WARPS_K > 16 then return false, "over 512 threads: too few registers per thread" end
  -- the sparse expansion needs more than the 128 registers of a 512-thread block
  if s.format == "q4s" and p.WARPS_N * p.WARPS_K > 8 then return false, "q4s: over 256 threads spill" end
  -- a q4s unit is four blocks: more columns, m tiles or units per round spill
  if s.format == "q4s" and (p.CW > 2 or p.M_TILES * p.CW * p.UNROLL > 4) then
    return false, "q4s: too much live per thread"
  end
  return true
end

-- Valid, and worth timing: the rest prunes the tuner's space (defaults
-- must pass it too, so it never rejects every variant of a valid shape).
function T.check(p, s)
  -- (the parameters that exist for act-order alone first: rejecting them
  -- before valid() keeps enumerating the space cheap)
  if p.XG ~= 0 and not s.act_order then return false, "XG: no act-order x to gather" end
  if p.FOLD == 1 and not unit_groups(s) then return false, "FOLD=1: grouped q4s, groups of whole 128-row units" end
  if p.PF > 0 and p.XG ~= 1 then return false, "PF: only ahead of an act-order prologue (XG=1)" end
  if p.XG == 2 and x_fits_split(p, s) then return false, "XG=2: the gathered x fits in shared memory split (XG=0)" end
  local ok, why = valid(p, s)
  if not ok then return false, why end
  -- the same kernel as ORDER = 0 / XG = 0 where they change nothing
  if p.ORDER == 1 and group_units(s) < 2 then return false, "ORDER=1: no group spans two units" end
  if p.XG == 1 and p.M_TILES ~= 1 then return false, "XG=1: one m tile (M <= 8)" end
  local m = T.meta(p, s)
  -- (XG = 1 holds at most 8 rows, where XT = 1 takes over)
  if m.m_min > m.m_max then return false, "no M left for it" end
  -- dense XT = 1: the winners measured had one warp along N, by 3 to 10 %
  if p.XT == 1 and s.format == "q4" and p.WARPS_N > 1 then return false, "XT=1: one warp along N (dense)" end
  if units(s) < p.SPLIT_K * p.WARPS_K and (p.SPLIT_K > 1 or p.WARPS_K > 2) then
    return false, "fewer units of K than warps along K"
  end
  return C.fills_gpu(p, s, m.tile_n, units(s), gathers(p, s))
end

-- The fallback of both defaults below for a shape too small for their
-- first choice: base with the least split-K, then the most warps along
-- K, that accepts takes (nil if none).
local function first_fallback(base, accepts)
  for _, split in ipairs({ 1, 2, 4, 8 }) do
    for _, warps_k in ipairs({ 8, 4, 2 }) do
      local q = { SPLIT_K = split, WARPS_K = warps_k }
      for key, value in pairs(base) do q[key] = value end
      if accepts(q) then return q end
    end
  end
  return nil
end

-- Untuned, for weights in plain row order. Up to 16 rows, one warp along
-- N of 64 columns (dense) or 32 (q4s), four warps along K, each round's
-- loads issued during the round before; above, more m tiles and no loads
-- ahead. On the H200 these came within 4 % (M = 1, llama-13b's shapes) and
-- 8 % (M = 16, with llama3-8b's) of the tuned best on average
-- (docs/BENCHMARKS.md, 2026-12-04 seventh), where the earlier default (32
-- columns a warp, eight warps along K, no loads ahead) took 1.1x to 1.7x.
-- For q4s above 32 rows two m tiles, not four, which spilled registers
-- (test_defaults_compile compiles every default).
local function plain_default(s, m)
  -- q4_mma (sm_80+) or q4_wmma takes larger M, except for sparse weights (see their checks)
  -- and K under 128, too short for their pipelines
  if m > 64 and s.n % 64 == 0 and s.k >= 128 and s.format == "q4" then return nil end
  local sparse, decode = s.format == "q4s", m <= 16
  local unroll = sparse and 1 or 4
  -- consecutive units where groups span several; x as the mma's B for M <= 8
  local order, xt = group_units(s) >= 2 and 1 or 0, m <= 8 and 1 or 0
  local p = { WARPS_N = 1, CW = (decode and not sparse) and 2 or 1,
              WARPS_K = decode and 4 or 8,
              M_TILES = m <= 16 and 1 or (m <= 32 or sparse) and 2 or 4,
              UNROLL = (decode and not sparse) and 2 or unroll, PIPE = decode and 1 or 0,
              ORDER = order, XG = 0, XT = xt, PF = 0 }
  -- grouped q4s of whole units, up to 8 rows: bare codes a unit at a time
  -- (FOLD). On the H100 at g128 it took 0.82x to 0.97x the unfolded
  -- default's time on eight llama shapes at M = 1, 4, 8 (0.90x on
  -- average; symmetric 0.92x to 1.00x), docs/BENCHMARKS.md 2026-12-05
  -- (fourth). At M = 16 (x as the mma's A) the best folded variant took
  -- 0.98x and 1.03x the best unfolded one's time: not taken there.
  if sparse and decode and m <= 8 and unit_groups(s) then p.FOLD = 1 end
  -- 256 blocks where decode's tuned winners showed it (at N = 4096 four
  -- 64-column splits, not eight); elsewhere two an SM
  C.default_split(p, s, units(s), decode and 256 or 2 * s.sms)
  -- FOLD: where K is split and half the split still gives at most one
  -- block an SM, on about half the SMs or more (64 to 132 of 132: 2048
  -- columns, 64 strips, were measured), blocks of eight warps along K and
  -- half the split: the same warps in half the blocks, each of which
  -- builds the table and joins the split's sum. On the H100
  -- at g128, M = 1 to 8, that took 0.81x to 0.98x the time (4096 x 4096,
  -- 11008, 14336; 2048 x 2048; 1000 x 2048); with more blocks than SMs
  -- (5120 x 13824, 160) 1.15x, with fewer than half (256 x 4096, 32) 1.04x
  -- to 1.06x (docs/BENCHMARKS.md, 2026-12-05 fifth).
  local halved = (s.n + tile_n(p) - 1) // tile_n(p) * (p.SPLIT_K // 2)
  if p.FOLD == 1 and p.SPLIT_K >= 2 and halved >= s.sms * 16 // 33 and halved <= s.sms then
    p.WARPS_K, p.SPLIT_K = 8, p.SPLIT_K // 2
  end
  -- a long K unsplit (16384 x 16384: 128 units a warp of four) takes eight
  -- warps along K, as tuned there (36.5 us at M = 1 against 50.4 with four)
  if decode and units(s) > 64 * p.SPLIT_K * p.WARPS_K then p.WARPS_K = 8 end
  -- no more units a round than a warp has in all
  while p.UNROLL > (sparse and 1 or 2) and units(s) < p.UNROLL * p.SPLIT_K * p.WARPS_K do p.UNROLL = p.UNROLL // 2 end
  if T.check(p, s) then return p end
  -- Not valid as it stands (a small shape): one column strip a warp, no
  -- loads ahead, and the first that passes check with fewer m tiles.
  for _, m_tiles in ipairs({ 4, 2, 1 }) do
    if m_tiles <= p.M_TILES then
      local q = first_fallback({ WARPS_N = 1, CW = 1, M_TILES = m_tiles, UNROLL = unroll, PIPE = 0,
                                 ORDER = order, XG = 0, XT = m_tiles == 1 and xt or 0, PF = 0 },
                               function(q) return T.check(q, s) end)
      if q then return q end
    end
  end
  return nil
end

-- Untuned, act-order weights. Up to 8 rows, the block's rows of x whole in
-- shared memory and gathered from there (XG = 1), with the earlier
-- default's warps (32 columns a warp, eight along K, no loads ahead; 64
-- columns spilled registers on sm_80), where a block holds them. Else, and
-- from 9 rows, x gathered ahead of the kernel (XG = 3) and the default for
-- plain row order: the same kernel as for grouped weights, after one small
-- one, and no shared memory for x at any K. (Above 64 rows, or 32 on sm_90,
-- q4_mma's and q4_wgmma's defaults, x gathered ahead as well.)
local function act_order_default(s, m)
  if m <= 8 then
    local order = group_units(s) >= 2 and 1 or 0
    local p = { WARPS_N = 1, CW = 1, WARPS_K = 8, M_TILES = 1, UNROLL = 4, PIPE = 0,
                ORDER = order, XG = 1, XT = 1, PF = 0 }
    C.default_split(p, s, units(s), 2 * s.sms)
    -- no more units a round than a warp has in all (N = 256, split eight
    -- ways, two units a warp: UNROLL = 4 spilled on sm_90)
    while p.UNROLL > 2 and units(s) < p.UNROLL * p.SPLIT_K * p.WARPS_K do p.UNROLL = p.UNROLL // 2 end
    local function holds(q) return T.check(q, s) and T.meta(q, s).m_max >= m end
    if holds(p) then return p end
    local q = first_fallback({ WARPS_N = 1, CW = 1, M_TILES = 1, UNROLL = 4, PIPE = 0,
                               ORDER = order, XG = 1, XT = 1, PF = 0 }, holds)
    if q then return q end
  end
  local plain = {}
  for key, value in pairs(s) do plain[key] = value end
  plain.act_order = false
  local p = plain_default(plain, m)
  if not p then return nil end
  p.XG = 3
  if T.check(p, s) then return p end
  return nil
end

function T.default(s, m)
  if s.act_order then return act_order_default(s, m) end
  return plain_default(s, m)
end

function T.constants(p, s)
  return { TEMPLATE = "q4_decode", Q4S_COPIES = q4s_copies(p, s), FACTORED = factored(s) and 1 or 0,
           GATHERS = gathers(p, s) and 1 or 0,
           Q4S_NEIGHBOURS = p.XT,
           Q4S_BARE = bare(p, s) and 1 or 0 }
end

T.source = [==[
{{ render(C.prelude) }}
//$ if SPARSE == 1 then
{{ render(C.sparse_codes) }}
{{ render(C.sparse) }}
//$ end
constexpr int WARPS_N = {{WARPS_N}}, WARPS_K = {{WARPS_K}}, CW = {{CW}};
constexpr int M_TILES = {{M_TILES}}, UNROLL = {{UNROLL}}, PIPE = {{PIPE}}, ORDER = {{ORDER}}, XT = {{XT}}, PF = {{PF}};
constexpr int KB = K / 32;  // 32-row blocks of K
// The loop runs over units of BPU blocks. q4: one block, whose four word
// rows the four lanes of a column group share out. q4s: four blocks, lane
// t taking block t whole (CHUNKS pieces of eight rows).
constexpr int BPU = {{SPARSE == 1 and 4 or 1}}, CHUNKS = BPU;
constexpr int UNITS = (KB + BPU - 1) / BPU;
// A round of a warp is UNROLL units: USTRIDE apart, the warps of the block
// side by side (ORDER 0: units wk, wk + WARPS_K, ...; ORDER 1: UNROLL
// consecutive units from wk * UNROLL).
constexpr int USTRIDE = ORDER == 1 ? 1 : WARPS_K, WSTART = ORDER == 1 ? UNROLL : 1;
// Units per split; with ORDER 1 rounded up to whole rounds, so every round
// starts at a multiple of UNROLL (see GROUP_UNITS below).
constexpr int U_SPLIT_0 = (UNITS + SPLIT_K - 1) / SPLIT_K;
constexpr int U_SPLIT = ORDER == 1 ? (U_SPLIT_0 + UNROLL - 1) / UNROLL * UNROLL : U_SPLIT_0;
constexpr int KB_SPLIT = U_SPLIT * BPU;  // blocks per split
// Grouped weights: units sharing one group (for q4s, one lane's block per
// unit, so 1 below 128 rows). With consecutive units, and this and UNROLL
// dividing one another, a round's units change group only at multiples of
// GROUP_UNITS: each group's scales and zeros are loaded and expanded once
// per round.
constexpr int GROUP_UNITS = GROUP % (32 * BPU) == 0 ? GROUP / (32 * BPU) : 1;
constexpr bool GROUP_ALIGNED = ORDER == 1 && (GROUP_UNITS % UNROLL == 0 || UNROLL % GROUP_UNITS == 0);
// group slot of unit u of a round, and whether u starts a group
__device__ __forceinline__ int group_slot(int u) { return GROUP_ALIGNED ? u / GROUP_UNITS : u; }
__device__ __forceinline__ bool group_starts(int u) { return !GROUP_ALIGNED || u % GROUP_UNITS == 0; }

{{ render(C.loads) }}

//$ if PF > 0 then
// The 128-byte line at p into L2, ahead of its load: no register, no wait.
__device__ __forceinline__ void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" :: "l"(p)); }

//$ end
//$ if FOLD == 1 and XT == 0 then
// FOLD with x as the mma's A: the scales and zeros, in one group, of the
// eight columns whose sums this thread holds (8t .. 8t + 7 of a strip), as
// loaded.
struct group_raw {
  uint2 s[2], z[2];
};
//$ else
// Scales and zeros of this thread's four columns in one group, as loaded.
struct group_raw {
  uint2 s, z;
};
//$ end

// Zeros of columns col .. col + 3 in group grp, as loaded (0 if not).
__device__ __forceinline__ uint2 load_zeros4(const half *zeros, int grp, int col, bool pred) {
//$ if SYMMETRIC == 1 then
  return make_uint2(0x48004800u, 0x48004800u);  // every zero is 8.0
//$ else
  return load_small(&zeros[(size_t)grp * N + col], pred);
//$ end
}

//$ if FOLD == 1 and XT == 0 then
// Columns col .. col + 7 (not loaded: scale 0).
__device__ __forceinline__ group_raw load_group(const half *scales, const half *zeros, int grp, int col,
                                                bool pred = true) {
  const size_t i = (size_t)grp * N + col;
  group_raw r;
  r.s[0] = load_small(&scales[i], pred);
  r.s[1] = load_small(&scales[i + 4], pred);
  r.z[0] = load_zeros4(zeros, grp, col, pred);
  r.z[1] = load_zeros4(zeros, grp, col + 4, pred);
  return r;
}
//$ else
// (Not loaded: scale 0, so whatever codes there are give exact zeros.)
__device__ __forceinline__ group_raw load_group(const half *scales, const half *zeros, int grp, int col,
                                                bool pred = true) {
  return {load_small(&scales[(size_t)grp * N + col], pred), load_zeros4(zeros, grp, col, pred)};
}
//$ end

{{ render(C.signature) }}
{
  extern __shared__ float red[];  // [WARPS_K][TILE_M][RED_STRIDE] partial sums, then gathered x or the q4s table
//$ if GATHERS == 1 then
  q4_wait_for_prior();  // (act-order: x is gathered in the prologue)
//$ end
  // A row of red is a word longer than the tile, so that a warp's stores
  // of its accumulators spread over the banks: with XT = 0 a store's eight
  // rows fall on 32 banks (rows TILE_N apart would share four), with
  // XT = 1 its four rows meet two-way conflicts (four-way TILE_N apart).
  constexpr int RED_STRIDE = TILE_N + 1;
{{ render(C.thread_place) }}
  // after the partial sums: per-channel weights' sums of x ([WARPS_K][TILE_M]),
  // then the q4s table or act-order x
  constexpr int SX_WORDS = {{(FACTORED == 1 and SPARSE == 0 and XT == 0) and "WARPS_K * TILE_M" or "0"}};
  constexpr int CS_WORDS = {{(FACTORED == 1 and XT == 1) and "TILE_N" or "0"}};
  float *const xsum_s = red + WARPS_K * TILE_M * RED_STRIDE, *const col_scale = xsum_s + SX_WORDS;
  float *const extra = col_scale + CS_WORDS;
//$ if FACTORED == 1 and XT == 1 then
  // Per-channel weights, M <= 8: the tile's scales go out now and into
  // shared memory (col_scale) once the loop is done, and each thread's
  // zeros of its own columns, which the loop's end applies, likewise: the
  // loop is short, and after it they would be waited for. (With XT = 0 the
  // registers they hold cost more than the wait.)
{{ render(C.tile_scales_load) }}
  uint2 my_zw[CW];  // zeros of this thread's four columns of each strip
#pragma unroll
  for (int c = 0; c < CW; ++c) my_zw[c] = load_zeros4(zeros, 0, col[c], col_ok[c]);
//$ end
//$ if SPARSE == 1 then
  u32 *table = reinterpret_cast<u32 *>(extra);  // expansion selectors
  u32 *bad_col = table + Q4S_TABLE_WORDS;       // [TILE_N] broken masks seen
//$ end
//$ if GATHERS == 1 and XG ~= 2 then
  // x[m0 + r][perm[k]] for this block's K range, in the weights' row order,
  // gathered below into shared memory ([rows][XK]).
  constexpr int XK = KB_SPLIT * 32;
  // (XG = 1: the same rows whole after them, copied in to gather from)
  half *xs = reinterpret_cast<half *>(extra);
  // x[row][k .. k + 7] (k a multiple of 8) from the gathered rows
  auto x8 = [&](int row, int k) {
    return *reinterpret_cast<const uint4 *>(&xs[(row - m0) * XK + k - kb_begin * 32]);
  };
  constexpr bool X_AHEAD = false;  // shared memory is near: read x where it is used
//$ else
  auto x8 = [&](int row, int k) { return q4_load_x8(x, perm, row, k); };
  constexpr bool X_AHEAD = true;   // x comes from L2: fetch it with the weights
//$ end

//$ if XT == 0 then
  float acc[M_TILES][4 * CW][4] = {};  // [m tile][column j of strip j / 4][mma fragment]
//$ end
//$ if FACTORED == 0 and FOLD == 0 then
  half2 s[CW][4], nzs[CW][4];  // grouped: the current group's scale and -zero*scale, per column
//$ end
//$ if XT == 1 then
  // XT = 1: x is the mma's B (its 8 columns are rows of x) and the weights
  // its A (16 rows: columns 4g + 2i and 4g + 2i + 1 of a strip for tile
  // i), so one mma covers twice the weights of one with x as A, of which
  // M <= 8 would leave half the rows empty. Per strip and tile the sums
  // below, as with XT = 0; per-channel weights' sums of x (dense) or of x
  // over the kept rows (q4s) in the units of the bare codes.
  float tacc[CW][2][4] = {};
//$ if FACTORED == 1 and SPARSE == 1 then
  float tkeep[CW][2][4] = {};  // the sums of x over each column's kept rows
//$ elseif FACTORED == 1 then
  float txsum[4] = {};                    // the sums of x
  constexpr u32 BARE_ONES = 0x00010001u;  // (2^-24, 2^-24), as bare as the codes
//$ end
//$ elseif FACTORED == 1 and SPARSE == 1 then
  // per-channel q4s: bare codes (pruned rows 0) and, through a second mma,
  // the sum of x over each column's kept rows, in the same layout
  float kacc[M_TILES][4 * CW][4] = {};
//$ elseif FACTORED == 1 then
  // per-channel: the codes go into the mma bare (q4_unpack_bare), their sum
  // with x beside them through an mma with a B of ones
  float xsum[M_TILES][4] = {};
  constexpr u32 ONES = 0x3c003c00u;  // (1.0, 1.0)
//$ end

  // Rounds of UNROLL units (STEP units a round for the block). Weights and
  // the first m tile's x rows of a round are loaded before any use (with
  // PIPE, a round ahead), so their latencies overlap.
  constexpr int STEP = WARPS_K * UNROLL;
  constexpr int XR = M_TILES == 1 && !XT ? 2 : 1;  // x rows fetched ahead: g (and g + 8 with one m tile)
  // group scales fetched per round: one per group the round touches
  constexpr int GR = GROUP == K ? 1 : GROUP_ALIGNED ? (UNROLL + GROUP_UNITS - 1) / GROUP_UNITS : UNROLL;
  // 16-byte words per column group and unit: the codes of rows 8t .. 8t+7
  // (q4), or the mask and both code words of block t (q4s).
  constexpr int WORDS = {{SPARSE == 1 and 3 or 1}};
  // This thread's block of unit un, and the first k of its chunk q.
  auto block_of = [&](int un) { return un * BPU + (BPU > 1 ? t : 0); };
  auto k_of = [&](int kb, int q) { return 32 * kb + 8 * (BPU > 1 ? q : t); };
  uint4 w[UNROLL][CW][WORDS], xg[UNROLL][XR][CHUNKS];
  group_raw gr[GR][CW];
  // What a fetch loads: the round's weights (codes, masks, group scales),
  // its rows of x (X_AHEAD only), or both. The prologue fetches its first
  // round's weights, then its x once q4_wait_for_prior has returned.
  enum { FETCH_WEIGHTS = 1, FETCH_X = 2, FETCH_BOTH = 3 };
  auto fetch = [&](int un0, uint4 (&wv)[UNROLL][CW][WORDS], uint4 (&xv)[UNROLL][XR][CHUNKS],
                   group_raw (&gv)[GR][CW], int what = FETCH_BOTH) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int kb = block_of(un0 + u * USTRIDE);
      const bool ok = kb < kb_end;
#pragma unroll
      for (int c = 0; c < CW; ++c) {
        if (!(what & FETCH_WEIGHTS)) break;
        const bool load = ok && col_ok[c];
//$ if SPARSE == 1 then
        // past the end: a valid mask (16 bits) over zero codes and scale 0
        wv[u][c][0] = load_stream(&mask[(size_t)kb * N + col[c]], load, 0xffffu);
        wv[u][c][1] = load_stream(&qweight[(size_t)(2 * kb) * N + col[c]], load);
        wv[u][c][2] = load_stream(&qweight[(size_t)(2 * kb + 1) * N + col[c]], load);
//$ else
        wv[u][c][0] = load_stream(&qweight[(size_t)(4 * kb + t) * N + col[c]], load);
//$ end
        if (GROUP < K && group_starts(u))
//$ if FOLD == 1 and XT == 0 then
          // (the group's scales of the eight columns whose sums this thread holds)
          gv[group_slot(u)][c] = load_group(scales, zeros, kb * 32 / GROUP, col[c] - 4 * g + 8 * t,
                                            ok && col[c] - 4 * g + 8 * t < N);
//$ else
          gv[group_slot(u)][c] = load_group(scales, zeros, kb * 32 / GROUP, col[c], load);
//$ end
      }
      if (!X_AHEAD || !(what & FETCH_X)) continue;
#pragma unroll
      for (int i = 0; i < XR; ++i) {
        const int r = m0 + g + 8 * i;
        // rows g + 8 exist only for M > 8: skip their loads block-wide
        const bool rows = i == 0 || m0 + 8 < M;
#pragma unroll
        for (int q = 0; q < CHUNKS; ++q) xv[u][i][q] = make_uint4(0, 0, 0, 0);
        if (rows) {
#pragma unroll
          for (int q = 0; q < CHUNKS; ++q)
            if (ok && r < M) xv[u][i][q] = x8(r, k_of(kb, q));
        }
      }
    }
  };
//$ if GATHERS == 1 and XG == 1 then
  // Act-order, XG = 1: the loads the prologue waits for (the block's rows
  // of x, whole, and this thread's first perm entries) go out first, ahead
  // of the first round's weights: behind them, in the memory system's
  // queues, they would come back only once most of that round had.
  const int x_rows = min(TILE_M, M - m0), x_kn = (kb_end - kb_begin) * 32;
  const int4 *pg = reinterpret_cast<const int4 *>(perm + kb_begin * 32);
  // perm items (eight consecutive k) a thread gathers, all loaded at once where they are few
  constexpr int ITEMS = (KB_SPLIT * 4 + THREADS - 1) / THREADS, PB = ITEMS < 8 ? ITEMS : 8;
  int4 pf[PB][2];
  auto load_perm = [&](int k0) {
#pragma unroll
    for (int j = 0; j < PB; ++j) {
      const int k = k0 + 8 * j * THREADS;
      pf[j][0] = k < x_kn ? __ldg(pg + k / 4) : make_int4(0, 0, 0, 0);
      pf[j][1] = k < x_kn ? __ldg(pg + k / 4 + 1) : make_int4(0, 0, 0, 0);
    }
  };
  const uint4 *xsrc = reinterpret_cast<const uint4 *>(x + (size_t)m0 * K);
  const int xn = x_rows * (K / 8);  // 16-byte vectors of x to copy
  constexpr int XB = 8;             // of them in flight per thread and pass
  uint4 xv[XB];                     // this thread's of the current pass
  auto load_x = [&](int i0) {
#pragma unroll
    for (int j = 0; j < XB; ++j)
      if (i0 + j * THREADS < xn) xv[j] = __ldg(xsrc + i0 + j * THREADS);
  };
  load_x(threadIdx.x);
  load_perm(8 * threadIdx.x);
//$ end
  // The first round's loads go out before the block prepares the rest
  // (the q4s table, the gathered x), so their latencies overlap: its
  // weights, then (once the kernel before has finished) its x.
//$ if GATHERS == 1 then
  fetch(u_begin + wk * WSTART, w, xg, gr);
//$ else
  fetch(u_begin + wk * WSTART, w, xg, gr, FETCH_WEIGHTS);
  q4_wait_for_prior();
  fetch(u_begin + wk * WSTART, w, xg, gr, FETCH_X);
//$ end
//$ if PF > 0 then
  // Act-order: rounds 1 .. PF of this warp's weights into L2 now, one lane
  // per 128-byte line. The prologue below leaves only the first round in
  // flight, and where an SM holds one block (few column tiles) nothing else
  // would keep the memory busy meanwhile; the loop then finds them in L2.
  if (g == 0) {
    for (int r = 1; r <= PF; ++r) {
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) {
        const int kb = block_of(u_begin + wk * WSTART + r * STEP + u * USTRIDE);
#pragma unroll
        for (int c = 0; c < CW; ++c)
          if (kb < kb_end && col_ok[c]) prefetch_l2(&qweight[(size_t)(4 * kb + t) * N + col[c]]);
      }
    }
  }
//$ end
//$ if SPARSE == 1 then
  q4s_build_table(table);
  for (int i = threadIdx.x; i < TILE_N; i += THREADS) bad_col[i] = 0;
  __syncthreads();
  u32 bad[CW][4] = {};  // per column: non-zero once a mask word without 16 bits was read
//$ end
//$ if GATHERS == 1 and XG == 1 then
  {
    // The block's rows of x, whole, into shared memory, XB vectors a
    // thread and pass (the first pass's loaded above; more passes for
    // larger M). Then the gather, shared memory to shared memory, eight
    // consecutive k a thread: their perm entries come straight from global
    // memory into registers (the first PB items' loaded above), read once
    // for all rows, and each row's eight values go out as one 16-byte store.
    half *xw = xs + x_rows * XK;  // [x_rows][K]
    for (int i0 = threadIdx.x; i0 < xn; i0 += XB * THREADS) {
      if (i0 != (int)threadIdx.x) load_x(i0);
#pragma unroll
      for (int j = 0; j < XB; ++j)
        if (i0 + j * THREADS < xn) reinterpret_cast<uint4 *>(xw)[i0 + j * THREADS] = xv[j];
    }
    __syncthreads();
    const unsigned short *xu = reinterpret_cast<const unsigned short *>(xw);
    for (int k0 = 8 * threadIdx.x; k0 < XK; k0 += 8 * PB * THREADS) {
      if (k0 != 8 * (int)threadIdx.x) load_perm(k0);
#pragma unroll
      for (int j = 0; j < PB; ++j) {
        const int k = k0 + 8 * j * THREADS;
        if (k >= XK) break;
        const int p[8] = {pf[j][0].x, pf[j][0].y, pf[j][0].z, pf[j][0].w, pf[j][1].x, pf[j][1].y, pf[j][1].z, pf[j][1].w};
        for (int r = 0; r < x_rows; ++r) {
          u32 v[4] = {};
          if (k < x_kn) {
#pragma unroll
            for (int i = 0; i < 4; ++i) v[i] = xu[r * K + p[2 * i]] | (u32)xu[r * K + p[2 * i + 1]] << 16;
          }
          *reinterpret_cast<uint4 *>(&xs[r * XK + k]) = make_uint4(v[0], v[1], v[2], v[3]);
        }
      }
    }
    __syncthreads();
  }
//$ elseif GATHERS == 1 and XG == 0 then
  {
    // perm is read coalesced, PK entries per thread and pass; then each
    // row's x values, PK independent loads at a time (x rows are small and
    // stay in L1).
    const int k0 = kb_begin * 32, rows = min(TILE_M, M - m0), kn = (kb_end - kb_begin) * 32;
    constexpr int PK = 16;
    for (int kc = 0; kc < XK; kc += PK * THREADS) {
      int src[PK];
#pragma unroll
      for (int j = 0; j < PK; ++j) {
        const int k = kc + j * THREADS + threadIdx.x;
        src[j] = k < kn ? __ldg(&perm[k0 + k]) : -1;
      }
      for (int r = 0; r < rows; ++r) {
        const half *xr = x + (size_t)(m0 + r) * K;
        half v[PK];
#pragma unroll
        for (int j = 0; j < PK; ++j) v[j] = src[j] >= 0 ? __ldg(&xr[src[j]]) : __ushort_as_half(0);
#pragma unroll
        for (int j = 0; j < PK; ++j) {
          const int k = kc + j * THREADS + threadIdx.x;
          if (k < XK) xs[r * XK + k] = v[j];
        }
      }
    }
    __syncthreads();
  }
//$ end
  // Column j of strip c over the rows of chunk q of unit u, as the mma's
  // operand: b the weights (bare codes for per-channel weights, else
  // dequantized, pruned rows 0), keep the keep flags of per-channel q4s.
  auto column_b = [&](int u, int c, int j, int q, u32 (&b)[4], u32 (&keep)[4]) {
//$ if SPARSE == 1 then
    const u32 mw[4] = {w[u][c][0].x, w[u][c][0].y, w[u][c][0].z, w[u][c][0].w};
    const u32 c0[4] = {w[u][c][1].x, w[u][c][1].y, w[u][c][1].z, w[u][c][1].w};
    const u32 c1[4] = {w[u][c][2].x, w[u][c][2].y, w[u][c][2].z, w[u][c][2].w};
    if (q == 0) bad[c][j] |= __popc(mw[j]) ^ 16u;
//$ if Q4S_BARE == 1 then
    // (`other` as popcounts: the counts of chunks 0 and 3 from their table
    // entries would stay live in registers until chunks 1 and 2)
    const uint4 e = q4s_entry(table, mw[j], q);
    q4s_expand_bare(e, q4s_window(c0[j], c1[j], q, q4s_other(mw[j], q), q4s_count_field(e.y)), b, keep);
//$ else
    half2 v[4];
    u32 pruned[4];
    q4s_expand(mw[j], c0[j], c1[j], q, table, v, pruned);
#pragma unroll
    for (int i = 0; i < 4; ++i) b[i] = q4_h2_bits(q4_scale(v[i], s[c][j], nzs[c][j])) & ~pruned[i];
//$ end
//$ else
    const u32 words[4] = {w[u][c][0].x, w[u][c][0].y, w[u][c][0].z, w[u][c][0].w};
//$ if FACTORED == 1 then
    q4_unpack_bare(words[j], b);
//$ else
    half2 v[4];
    q4_unpack(words[j], v);
#pragma unroll
    for (int i = 0; i < 4; ++i) b[i] = q4_h2_bits(q4_scale(v[i], s[c][j], nzs[c][j]));
//$ end
//$ end
  };
  for (int un0 = u_begin + wk * WSTART; un0 < u_end; un0 += STEP) {
//$ if PIPE == 1 then
    uint4 w_next[UNROLL][CW][WORDS], x_next[UNROLL][XR][CHUNKS];
    group_raw g_next[GR][CW];
    fetch(un0 + STEP, w_next, x_next, g_next);
//$ end
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      if (un0 + u * USTRIDE >= u_end) break;
      const int kb = block_of(un0 + u * USTRIDE);
//$ if GROUP_SIZE < K and FOLD == 0 then
      // a new group: its scales and zeros, expanded once for the unit's chunks
      if (group_starts(u))
#pragma unroll
        for (int c = 0; c < CW; ++c) q4_column_scales(gr[group_slot(u)][c].s, gr[group_slot(u)][c].z, s[c], nzs[c]);
//$ end
//$ if XT == 1 then
//$ if FOLD == 1 then
      // FOLD: the unit's sums, of bare codes and of x over the kept rows
      float uacc[CW][2][4] = {}, ukeep[CW][2][4] = {};
//$ end
#pragma unroll
      for (int q = 0; q < CHUNKS; ++q) {
        // B fragments: x[g][k .. k + 7] of this thread's chunk as the pairs
        // of the weights' order, two for each mma: dense (i, i + 4), as
        // q4_unpack gives them; q4s (2i, 2i + 1), as loaded (Q4S_NEIGHBOURS)
        const uint4 xa = X_AHEAD ? xg[u][0][q] : m0 + g < M && kb < kb_end ? x8(m0 + g, k_of(kb, q)) : make_uint4(0, 0, 0, 0);
//$ if SPARSE == 1 then
        const u32 bx[4] = {xa.x, xa.y, xa.z, xa.w};
//$ else
        const u32 bx[4] = {__byte_perm(xa.x, xa.z, 0x5410), __byte_perm(xa.x, xa.z, 0x7632),
                           __byte_perm(xa.y, xa.w, 0x5410), __byte_perm(xa.y, xa.w, 0x7632)};
//$ end
#pragma unroll
        for (int c = 0; c < CW; ++c) {
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            // columns 2i (A rows g) and 2i + 1 (A rows g + 8) of this thread's four
            u32 b[2][4], keep[2][4];
            column_b(u, c, 2 * i, q, b[0], keep[0]);
            column_b(u, c, 2 * i + 1, q, b[1], keep[1]);
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const u32 aw[4] = {b[0][2 * h], b[1][2 * h], b[0][2 * h + 1], b[1][2 * h + 1]};
              q4_mma16816({{FOLD == 1 and "uacc" or "tacc"}}[c][i], aw, bx[2 * h], bx[2 * h + 1]);
//$ if SPARSE == 1 and Q4S_BARE == 1 then
              const u32 ak[4] = {keep[0][2 * h], keep[1][2 * h], keep[0][2 * h + 1], keep[1][2 * h + 1]};
              q4_mma16816({{FOLD == 1 and "ukeep" or "tkeep"}}[c][i], ak, bx[2 * h], bx[2 * h + 1]);
//$ end
            }
          }
        }
//$ if SPARSE == 0 and FACTORED == 1 then
        // and the sums of x, through an A of bare ones (in the codes' units)
        const u32 ones[4] = {BARE_ONES, BARE_ONES, BARE_ONES, BARE_ONES};
        q4_mma16816(txsum, ones, bx[0], bx[1]);
        q4_mma16816(txsum, ones, bx[2], bx[3]);
//$ end
      }
//$ if FOLD == 1 then
      // The unit lies in one group (GROUP a multiple of its 128 rows, so K
      // too: no unit is cut short), whose scale and zero this thread holds
      // for its four columns 4g .. 4g + 3: y += s (q - z) . x once a unit,
      // 2^24 s (codes . x - z kept x) in the bare codes' units. Element e of
      // tile i is column 4g + 2i + e / 2.
#pragma unroll
      for (int c = 0; c < CW; ++c) {
        const half *s4 = reinterpret_cast<const half *>(&gr[group_slot(u)][c].s);
        const half *z4 = reinterpret_cast<const half *>(&gr[group_slot(u)][c].z);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float sj = __half2float(s4[j]) * 16777216.f, nzj = -__half2float(z4[j]);
#pragma unroll
          for (int e = 2 * (j & 1); e < 2 * (j & 1) + 2; ++e)
            tacc[c][j >> 1][e] = fmaf(sj, fmaf(nzj, ukeep[c][j >> 1][e], uacc[c][j >> 1][e]), tacc[c][j >> 1][e]);
        }
      }
//$ end
//$ else
//$ if FOLD == 1 then
      // FOLD: the unit's sums, of bare codes and of x over the kept rows
      float uacc[M_TILES][4 * CW][4] = {}, ukacc[M_TILES][4 * CW][4] = {};
//$ end
#pragma unroll
      for (int q = 0; q < CHUNKS; ++q) {
        // A fragments of every m tile: rows g and g + 8, x[k .. k + 7] of
        // this thread's chunk, in the order of the codes below.
        u32 a[M_TILES][2][4];
#pragma unroll
        for (int mt = 0; mt < M_TILES; ++mt) {
          const int r0 = m0 + mt * 16 + g, r1 = r0 + 8;
          const uint4 xa = mt == 0 && X_AHEAD ? xg[u][0][q]
                         : r0 < M && kb < kb_end ? x8(r0, k_of(kb, q)) : make_uint4(0, 0, 0, 0);
          const uint4 xb = XR == 2 && X_AHEAD ? xg[u][XR - 1][q]
                         : r1 < M && kb < kb_end ? x8(r1, k_of(kb, q)) : make_uint4(0, 0, 0, 0);
          // codes come in the order (i, i + 4) (q4_unpack's, and q4s_expand
          // keeps it here): a[mt][h] feeds the mma of half h (codes 2h, 2h+4 |
          // 2h+1, 2h+5) of every column. (Pairs of neighbouring rows would
          // need no permutation of x, but the mma's A quads would then be
          // copies of the loaded registers, which ptxas makes over and over.)
          const u32 lo[4] = {xa.x, xb.x, xa.y, xb.y}, hi[4] = {xa.z, xb.z, xa.w, xb.w};
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            a[mt][h][0] = __byte_perm(lo[2 * h], hi[2 * h], 0x5410);
            a[mt][h][1] = __byte_perm(lo[2 * h + 1], hi[2 * h + 1], 0x5410);
            a[mt][h][2] = __byte_perm(lo[2 * h], hi[2 * h], 0x7632);
            a[mt][h][3] = __byte_perm(lo[2 * h + 1], hi[2 * h + 1], 0x7632);
          }
        }
        // B fragments one column at a time, straight into the mma: only four
        // registers of dequantized weights are live at once.
#pragma unroll
        for (int c = 0; c < CW; ++c) {
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            u32 b[4], keep[4];
            column_b(u, c, j, q, b, keep);
#pragma unroll
            for (int mt = 0; mt < M_TILES; ++mt) {
              q4_mma16816({{FOLD == 1 and "uacc" or "acc"}}[mt][4 * c + j], a[mt][0], b[0], b[1]);
              q4_mma16816({{FOLD == 1 and "uacc" or "acc"}}[mt][4 * c + j], a[mt][1], b[2], b[3]);
//$ if SPARSE == 1 and Q4S_BARE == 1 then
              q4_mma16816({{FOLD == 1 and "ukacc" or "kacc"}}[mt][4 * c + j], a[mt][0], keep[0], keep[1]);
              q4_mma16816({{FOLD == 1 and "ukacc" or "kacc"}}[mt][4 * c + j], a[mt][1], keep[2], keep[3]);
//$ end
            }
          }
        }
//$ if FACTORED == 1 and SPARSE == 0 then
#pragma unroll
        for (int mt = 0; mt < M_TILES; ++mt) {
          q4_mma16816(xsum[mt], a[mt][0], ONES, ONES);
          q4_mma16816(xsum[mt], a[mt][1], ONES, ONES);
        }
//$ end
      }
//$ if FOLD == 1 then
      // The unit's sums folded in, as with XT = 1: element e of column tile
      // j is column 4(2t + e % 2) + j % 4 of strip j / 4, whose scale and
      // zero are half 4(e % 2) + j % 4 of this thread's eight.
#pragma unroll
      for (int c = 0; c < CW; ++c) {
        const half *s8 = reinterpret_cast<const half *>(gr[group_slot(u)][c].s);
        const half *z8 = reinterpret_cast<const half *>(gr[group_slot(u)][c].z);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int j = 4 * c + i % 4;
          const float si = __half2float(s8[i]) * 16777216.f, nzi = -__half2float(z8[i]);
#pragma unroll
          for (int mt = 0; mt < M_TILES; ++mt)
#pragma unroll
            for (int e = i / 4; e < 4; e += 2)
              acc[mt][j][e] = fmaf(si, fmaf(nzi, ukacc[mt][j][e], uacc[mt][j][e]), acc[mt][j][e]);
        }
      }
//$ end
//$ end
    }
//$ if PIPE == 1 then
#pragma unroll
    for (int i = 0; i < GR; ++i)
#pragma unroll
      for (int c = 0; c < CW; ++c) gr[i][c] = g_next[i][c];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
#pragma unroll
      for (int c = 0; c < CW; ++c)
#pragma unroll
        for (int q = 0; q < WORDS; ++q) w[u][c][q] = w_next[u][c][q];
#pragma unroll
      for (int i = 0; i < XR; ++i)
#pragma unroll
        for (int q = 0; q < CHUNKS; ++q) xg[u][i][q] = x_next[u][i][q];
    }
//$ else
    fetch(un0 + STEP, w, xg, gr);
//$ end
  }

//$ if XT == 1 then
  // Element e of tile i is row 2t + e % 2 of x, column 4g + 2i + e / 2 of
  // the strip; per-channel weights take their zero here, times the sum of
  // x (over the kept rows for q4s), and their scale in the epilogue.
#pragma unroll
  for (int c = 0; c < CW; ++c) {
//$ if FACTORED == 1 then
    const half *z4 = reinterpret_cast<const half *>(&my_zw[c]);  // this thread's four columns
//$ end
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int cc = wn * 32 * CW + 32 * c + 4 * g + 2 * i + (e >> 1);
//$ if FACTORED == 1 then
        const float z = __half2float(z4[2 * i + (e >> 1)]);
        red[(wk * TILE_M + 2 * t + (e & 1)) * RED_STRIDE + cc] =
            tacc[c][i][e] - z * {{SPARSE == 1 and "tkeep[c][i][e]" or "txsum[e]"}};
//$ else
        red[(wk * TILE_M + 2 * t + (e & 1)) * RED_STRIDE + cc] = tacc[c][i][e];
//$ end
      }
  }
//$ else
  // Accumulator element e of column tile j is row g + 8(e / 2), column
  // 4(2t + e % 2) + j % 4 of strip j / 4: undo the column interleave here.
//$ if FACTORED == 1 and SPARSE == 1 then
  // q4s per channel: acc - z * kacc, each column's codes less its zero over
  // its kept rows (this thread's accumulators cover columns 8t .. 8t+7 of
  // each strip)
#pragma unroll
  for (int c = 0; c < CW; ++c) {
    const int n0 = blockIdx.x * TILE_N + wn * 32 * CW + 32 * c + 8 * t;
    const uint2 zw[2] = {load_zeros4(zeros, 0, n0, n0 < N), load_zeros4(zeros, 0, n0 + 4, n0 + 4 < N)};
    const half *z = reinterpret_cast<const half *>(zw);  // columns n0 .. n0 + 7
#pragma unroll
    for (int mt = 0; mt < M_TILES; ++mt)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[mt][4 * c + j][e] -= __half2float(z[4 * (e & 1) + j]) * kacc[mt][4 * c + j][e];
  }
//$ end
#pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt)
#pragma unroll
    for (int j = 0; j < 4 * CW; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = mt * 16 + g + 8 * (e >> 1);
        const int c = wn * 32 * CW + 32 * (j / 4) + 4 * (2 * t + (e & 1)) + j % 4;
        red[(wk * TILE_M + r) * RED_STRIDE + c] = acc[mt][j][e];
      }
//$ end
//$ if FACTORED == 1 and SPARSE == 0 and XT == 0 then
  // every column of xsum holds the row's sum of x; warps side by side along
  // N summed the same x, so one of them writes it
#pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt)
    if (wn == 0 && t == 0) {
      xsum_s[wk * TILE_M + mt * 16 + g] = xsum[mt][0];
      xsum_s[wk * TILE_M + mt * 16 + g + 8] = xsum[mt][2];
    }
//$ end
//$ if SPARSE == 1 then
  // A column whose mask broke the 16-of-32 rule comes out NaN, never as a
  // plausible wrong number (q4_sparse_validate names the block).
#pragma unroll
  for (int c = 0; c < CW; ++c)
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (bad[c][j]) bad_col[wn * 32 * CW + 32 * c + 4 * g + j] = 1;
//$ end
//$ if FACTORED == 1 and XT == 1 then
{{ render(C.tile_scales_store) }}
//$ end
  __syncthreads();
  float *const epi_buf = red;  // (split clusters: the partial tile, after tile() has read red)
  auto tile = [&](int r, int c) {
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < WARPS_K; ++i) sum += red[(i * TILE_M + r) * RED_STRIDE + c];
//$ if SPARSE == 1 then
    if (bad_col[c]) sum = __int_as_float(0x7fffffff);
//$ end
//$ if FACTORED == 1 and (SPARSE == 1 or XT == 1) then
    // sum is 2^-24 * (q - z) . x (over the kept rows for q4s; see above)
    sum = {{XT == 1 and "col_scale[c]" or "__half2float(scales[blockIdx.x * TILE_N + c])"}} * (sum * 16777216.f);
//$ elseif FACTORED == 1 then
    // sum is 2^-24 * sum of x * q (bare codes), sx the sum of x: scale and
    // zero come in once, y = s * (q - z) . x
    float sx = 0.f;
#pragma unroll
    for (int i = 0; i < WARPS_K; ++i) sx += xsum_s[i * TILE_M + r];
    const int n = blockIdx.x * TILE_N + c;
    sum = __half2float(scales[n]) * (sum * 16777216.f - __half2float(q4_zero(zeros, 0, n)) * sx);
//$ end
    return sum;
  };
{{ render(C.epilogue) }}
}
//$ if XG == 3 then
{{ render(C.gather_x) }}
//$ end
]==]

return T
