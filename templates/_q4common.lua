-- Pieces of CUDA C++ shared by every kernel family: the problem constants,
-- the int4 -> fp16 unpacking, 16-byte asynchronous copies and the split-K
-- epilogue. Each piece is text with holes, rendered in the including
-- template's environment with render(...).
local C = {}

-- Shared memory a block may use on each architecture (bytes, opt-in limit),
-- in increasing order of architecture.
C.smem_limits = { { 70, 96 * 1024 }, { 75, 64 * 1024 }, { 80, 163 * 1024 }, { 86, 99 * 1024 },
                  { 87, 163 * 1024 }, { 89, 99 * 1024 }, { 90, 227 * 1024 }, { 100, 227 * 1024 },
                  { 120, 99 * 1024 } }

-- Static shared memory a kernel may declare on top of its dynamic memory
-- (the split-K epilogue's ticket), which the opt-in limit also covers.
C.smem_static = 16

-- Dynamic shared memory a block may use: the limit of the newest listed
-- architecture not newer than `arch`, less the static memory above.
function C.smem_max(arch)
  local best = 48 * 1024
  for _, e in ipairs(C.smem_limits) do
    if e[1] <= arch then best = e[2] end
  end
  return best - C.smem_static
end

-- Grouped q4s whose groups are whole units of 128 rows (four 32-row
-- blocks): the small-M kernels sum a unit's codes bare and fold the sums
-- into its one group's scale and zero (q4_decode's FOLD, q4s_imma).
function C.unit_groups(s) return s.format == "q4s" and s.group_size < s.k and s.group_size % 128 == 0 end

-- Pruning shared by the small-M kernels (q4_decode, q4s_imma), for
-- check(): split-K exists to fill the GPU, so it is skipped where column
-- tiles alone give every SM (s.sms of them) several blocks (unless
-- `split_anyway`: act-order weights also split K to fit their gathered x in
-- shared memory); and a shape with work enough to fill a GPU keeps only
-- launches with warps enough to do it (a smaller shape keeps every one).
-- A 32-column strip has at most a warp per unit of K (the kernel's
-- `units`), in a power of two, and 64 (eight along K, K split eight ways):
-- so N = 256 fills no GPU, whatever K, nor q4s 1024 x 3072 (24 units of
-- four blocks: 16 warps a strip).
function C.fills_gpu(p, s, tile_n, units, split_anyway)
  local col_tiles = (s.n + tile_n - 1) // tile_n
  if p.SPLIT_K > 1 and col_tiles * p.SPLIT_K > 8 * s.sms and not split_anyway then
    return false, "split-K not needed: enough column tiles"
  end
  local per_strip = 1
  while per_strip < 64 and 2 * per_strip <= units do per_strip = 2 * per_strip end
  local fillable = (s.n + 31) // 32 * per_strip >= 4 * s.sms
  if fillable and col_tiles * p.SPLIT_K * p.WARPS_K * p.WARPS_N < 4 * s.sms then
    return false, "too few warps to fill a GPU"
  end
  return true
end

-- Dense weights at 33 to 64 rows on sm_90, fewer than 66 column tiles of
-- 128 (N < 8448): q4_mma's default serves these, q4_wgmma's the wider
-- ones. q4_wgmma's one 64-row warpgroup a tile makes too few blocks there
-- (4096 x 4096 at M = 64: 24.3 us against q4_mma's 16.5 on the H200,
-- docs/BENCHMARKS.md).
function C.narrow_mid(s, m)
  return s.arch == 90 and s.format == "q4" and m > 32 and m <= 64 and s.n < 66 * 128
end

-- meta's min_blocks for a kernel of `threads` threads in a grid of
-- `blocks`: blocks enough per SM to run the grid in one wave on the GPU's
-- `sms` SMs, so ptxas budgets registers for the occupancy the launch can
-- have, but never a budget under `floor` registers a thread (about what
-- the family's loops need: budgets forced lower spilled; a grid that
-- needs more blocks than that takes two waves anyway).
function C.min_blocks(threads, blocks, floor, sms)
  local one_wave = (blocks + sms - 1) // sms
  return math.max(1, math.min(one_wave, 65536 // (floor * threads)))
end

-- A default's split-K (over `units` units of K): the least that makes
-- `blocks` blocks of p's 32 * CW * WARPS_N columns (callers ask about two
-- an SM), while every warp along K keeps two units a split; then
-- fewer warps along K where they would have none.
function C.default_split(p, s, units, blocks)
  local width = 32 * p.CW * p.WARPS_N
  local col_tiles = (s.n + width - 1) // width
  for _, split in ipairs({ 1, 2, 4, 8 }) do
    p.SPLIT_K = split
    if col_tiles * split >= blocks or units < 2 * split * p.WARPS_K then break end
  end
  while units < p.SPLIT_K * p.WARPS_K and p.WARPS_K > 2 do p.WARPS_K = p.WARPS_K // 2 end
end

-- p with the least split-K of 1, 2 and 4 that passes check(p, s) and
-- makes its `tiles` tiles (counted unsplit) at least `want` blocks, else
-- with 4 if that passes; nil if none does. Sets p.SPLIT_K. (Unlike
-- C.default_split, for kernels whose check() knows what a split needs.)
function C.least_split(p, check, s, tiles, want)
  for _, split in ipairs({ 1, 2, 4 }) do
    p.SPLIT_K = split
    if check(p, s) and (tiles * split >= want or split == 4) then return p end
  end
  return nil
end

-- K in steps of bk for a pipeline of `stages`, split `split` ways; grouped
-- weights' groups a multiple or a divisor of a step (whole groups a step,
-- or whole steps a group). True, or false and the reason (for check()).
function C.k_steps_fit(s, bk, split, stages)
  if s.k % (bk * split) ~= 0 then return false, "K steps don't split evenly" end
  if s.k // bk // split < stages then return false, "fewer K steps than stages" end
  local g = s.group_size
  if g < s.k and (g % 32 ~= 0 or (g % bk ~= 0 and bk % g ~= 0)) then
    return false, "group size neither a multiple nor a divisor of BK"
  end
  return true
end

-- Problem constants and helpers every kernel starts with. GATHERS is 1
-- where the kernel's own loads gather act-order x through perm
-- (q4_decode's XG < 3); the other families, which read x gathered ahead by
-- C.gather_x's kernel, render it with GATHERS = 0, so that their source is
-- their plain-order twin's with the gather kernel after it.
C.prelude = [==[
// Generated by q4tune from template {{TEMPLATE}} for sm_{{ARCH}}.
// y[M][N] = x[M][K] * W[K][N], W int4 with fp16 scales and zeros per group.
#include <cuda_fp16.h>

typedef unsigned int u32;

// Programmatic dependent launch (sm_90 and up; a no-op below, and where
// the grid was not launched that way: q4_set_early_launch). The kernel
// may then start while the kernel before it on the stream is running, and
// this waits until that kernel has finished and its writes are visible. A
// kernel calls it before its first read of x and its first write, so what
// it reads ahead of it is the weights' arrays only (qweight, mask, scales,
// zeros, perm: include/q4tune.h states that contract). The kernels do not
// let their own dependents start early (griddepcontrol.launch_dependents
// at their top made some products launched back to back up to 31 % slower:
// docs/BENCHMARKS.md, 2026-12-03, sixth).
__device__ __forceinline__ void q4_wait_for_prior() {
//$ if ARCH >= 90 then
  asm volatile("griddepcontrol.wait;" ::: "memory");
//$ end
}

// The weight shape is fixed at compile time: every index below folds to
// shifts and constants, and loops over K have known trip counts.
constexpr int N = {{N}};
constexpr int K = {{K}};
constexpr int GROUP = {{GROUP_SIZE}};     // rows sharing one scale and zero
constexpr int GROUPS = K / GROUP;
// Launch geometry (q4_launch in runtime/q4_dispatch.c launches grid
// (N/TILE_N, M/TILE_M, SPLIT_K)).
constexpr int TILE_M = {{TILE_M}}, TILE_N = {{TILE_N}}, SPLIT_K = {{SPLIT_K}}, THREADS = {{THREADS}};

// One 32-bit word holds eight 4-bit codes of one column (rows 8r .. 8r+7,
// code i in bits 4i .. 4i+3). q4_unpack turns it into four half2, pair j
// holding codes (j, j+4) as 1024 + q: OR-ing a code into the mantissa of
// 1024.0h (0x6400) is exact and costs one LOP3, no int->float conversion.
__device__ __forceinline__ void q4_unpack(u32 w, half2 (&v)[4]) {
  const u32 MASK = 0x000f000fu, MAGIC = 0x64006400u;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    u32 r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(w >> (4 * j)), "r"(MASK), "r"(MAGIC));
    v[j] = *reinterpret_cast<half2 *>(&r);
  }
}

// (1024 + q) -> (q - z) * s for a pair of codes sharing one column's scale
// and zero: q is exact after the subtraction, and -z*s was rounded once.
__device__ __forceinline__ half2 q4_scale(half2 v, half2 s, half2 neg_zs) {
  const half2 bias = __halves2half2(__ushort_as_half(0x6400), __ushort_as_half(0x6400));
  return __hfma2(__hsub2(v, bias), s, neg_zs);
}

// Scales and -zero*scale of four neighbouring columns (four halves each,
// as loaded), each broadcast to both halves of a pair for q4_scale. fp16
// multiplication rounds once, like the fp32 product rounded to fp16.
__device__ __forceinline__ void q4_column_scales(uint2 s4, uint2 z4, half2 (&s)[4], half2 (&nzs)[4]) {
  const half2 *s2 = reinterpret_cast<const half2 *>(&s4), *z2 = reinterpret_cast<const half2 *>(&z4);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const half2 nz = __hmul2(__hneg2(z2[i]), s2[i]);
    s[2 * i] = __low2half2(s2[i]);
    s[2 * i + 1] = __high2half2(s2[i]);
    nzs[2 * i] = __low2half2(nz);
    nzs[2 * i + 1] = __high2half2(nz);
  }
}

// The bits of an fp16 pair, as an mma operand takes them.
__device__ __forceinline__ u32 q4_h2_bits(half2 h) { return *reinterpret_cast<u32 *>(&h); }

// One word's eight codes as four fp16 pairs in q4_unpack's order, each
// code bare in the mantissa of a subnormal, q * 2^-24: exact, and the mma
// multiplies and adds these exactly in fp32 (per-channel weights, whose
// scale and zero come after the sum). Codes 1, 5 (and 3, 7 after one shift)
// are masked where they lie, as 16q * 2^-24, and brought down by an exact
// multiplication by 1/16 on the fp16 pipe: 5 integer operations a word
// rather than 7 (the integer pipe is half of q4_mma's work).
__device__ __forceinline__ void q4_unpack_bare(u32 w, u32 (&b)[4]) {
  const half2 sixteenth = __float2half2_rn(0.0625f);
  const u32 lo = 0x000f000fu, hi = 0x00f000f0u, w8 = w >> 8;
  u32 b1 = w & hi, b3 = w8 & hi;
  b[0] = w & lo;
  b[1] = q4_h2_bits(__hmul2(*reinterpret_cast<half2 *>(&b1), sixteenth));
  b[2] = w8 & lo;
  b[3] = q4_h2_bits(__hmul2(*reinterpret_cast<half2 *>(&b3), sixteenth));
}
//$ if ARCH >= 80 then

// D += A * B for one 16x8x16 tile: fp16 in, fp32 accumulate (sm_80+).
__device__ __forceinline__ void q4_mma16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
//$ end

__device__ __forceinline__ half q4_neg_zs(half z, half s) {
  return __float2half_rn(-__half2float(z) * __half2float(s));
}

// The zero of column n in group grp.
__device__ __forceinline__ half q4_zero(const half *zeros, int grp, int n) {
//$ if SYMMETRIC == 1 then
  return __ushort_as_half(0x4800);  // symmetric weights: always 8, no zeros array
//$ else
  return zeros[(size_t)grp * N + n];
//$ end
}

//$ if GATHERS == 1 then
{{ render(C.gather8) }}
//$ end
// x[row][k0 .. k0 + 7] in the weights' row order (k0 a multiple of 8).
// Act-order weights had their rows sorted by group at import: their x
// columns are gathered through perm here, inside the kernel's own load.
__device__ __forceinline__ uint4 q4_load_x8(const half *x, const int *perm, int row, int k0) {
//$ if GATHERS == 1 then
  return q4_gather_x8(x, perm, row, k0);
//$ else
  return __ldg(reinterpret_cast<const uint4 *>(&x[(size_t)row * K + k0]));
//$ end
}
//$ if SPLIT_CLUSTER == 1 then

// Barrier of every thread of every block of the cluster; writes to shared
// memory before it are visible to the cluster's reads after it.
__device__ __forceinline__ void q4_cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// Two floats at shared address `local` of the cluster's block `rank`.
__device__ __forceinline__ float2 q4_cluster_load(u32 local, u32 rank) {
  u32 remote;
  float2 v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
  asm volatile("ld.shared::cluster.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(remote) : "memory");
  return v;
}
//$ end
]==]

-- The tile's scales, for the per-channel small-M kernels (q4_decode with
-- XT = 1, q4s_imma), which apply them once after the loop: the loop is
-- short, so they are loaded before it (after it they would be waited for).
-- C.tile_scales_load gives thread i the scales of columns i, i + THREADS,
-- .. of the tile; C.tile_scales_store puts them in shared memory,
-- col_scale[TILE_N], before the barrier ahead of the epilogue. They stay
-- fp16 until stored: converted at once, the thread would wait for the load
-- there, a trip to DRAM, before it issues the loads that follow it.
C.tile_scales_load = [==[
  constexpr int TCOLS = (TILE_N + THREADS - 1) / THREADS;  // tile columns per thread
  half my_scale[TCOLS];
#pragma unroll
  for (int j = 0; j < TCOLS; ++j) {
    const int i = threadIdx.x + j * THREADS, n = blockIdx.x * TILE_N + i;
    my_scale[j] = i < TILE_N && n < N ? scales[n] : __float2half(0.f);
  }
]==]

C.tile_scales_store = [==[
#pragma unroll
  for (int j = 0; j < TCOLS; ++j)
    if (threadIdx.x + j * THREADS < TILE_N) col_scale[threadIdx.x + j * THREADS] = __half2float(my_scale[j]);
]==]

-- Predicated loads of the small-M kernels (q4_decode, q4s_imma).
C.loads = [==[
// Weights are read exactly once: keep them out of L1. The load is
// predicated in the instruction: left to the compiler, a guarded load can
// become a branch, and a round's loads then no longer go out together.
// Where pred is false load_stream_keep leaves v as it was (no values to
// move into the registers every round), load_stream gives `fill` in every
// word.
__device__ __forceinline__ void load_stream_keep(uint4 &v, const u32 *p, bool pred) {
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
               " @p ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n}"
               : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w) : "l"(p), "r"((int)pred));
}

__device__ __forceinline__ uint4 load_stream(const u32 *p, bool pred, u32 fill = 0) {
  uint4 v = make_uint4(fill, fill, fill, fill);
  load_stream_keep(v, p, pred);
  return v;
}

// 8 bytes through the read-only path, predicated likewise (zeros if not).
__device__ __forceinline__ uint2 load_small(const void *p, bool pred) {
  uint2 v;
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %3, 0;\n mov.b32 %0, 0; mov.b32 %1, 0;\n"
               " @p ld.global.nc.v2.u32 {%0,%1}, [%2];\n}"
               : "=r"(v.x), "=r"(v.y) : "l"(p), "r"((int)pred));
  return v;
}
]==]

-- The grouped scales (and zeros) of one pipeline stage, for the kernels
-- that stage them with the tile (q4_mma, q4_wgmma): SG_ROWS rows of
-- TILE_N halves, the stage's SG groups of scales then of zeros, copied as
-- 16-byte pieces by COPIERS threads, copier `me` taking every COPIERS-th
-- piece from piece me on. Needs the including source's SG, SG_ROWS, BK and
-- copy16.
C.stage_scales = [==[
template <int COPIERS> __device__ __forceinline__ void stage_scales(half *ss, const half *scales, const half *zeros,
                                                                   int n0, int kt, int me) {
  constexpr int PIECES = SG_ROWS * TILE_N / 8;
#pragma unroll
  for (int j = 0; j < (PIECES + COPIERS - 1) / COPIERS; ++j) {
    const int i = me + j * COPIERS;
    if (PIECES % COPIERS != 0 && i >= PIECES) break;
    const int r = i / (TILE_N / 8), c = 8 * (i % (TILE_N / 8));
    const half *src = r < SG ? scales : zeros;
    copy16(&ss[r * TILE_N + c], &src[(size_t)(kt * BK / GROUP + r % SG) * N + n0 + c], true);
  }
}
]==]

-- Where a thread of the small-M kernels works (q4_decode, q4s_imma):
-- warp (wn, wk) of the block's WARPS_N x WARPS_K, lane 4g + t, its four
-- columns in each of the warp's CW 32-column strips, the block's rows of x
-- and its split of K in 32-row blocks and in the loop's units (UNITS,
-- U_SPLIT, KB, KB_SPLIT: the including source's constants).
C.thread_place = [==[
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wn = warp % WARPS_N, wk = warp / WARPS_N;
  const int g = lane >> 2, t = lane & 3;
  // First of this thread's 4 columns in each of the warp's CW 32-column
  // strips; N % 4 == 0, so four columns are in or out together.
  int col[CW];
  bool col_ok[CW];
#pragma unroll
  for (int c = 0; c < CW; ++c) {
    col[c] = blockIdx.x * TILE_N + wn * 32 * CW + 32 * c + 4 * g;
    col_ok[c] = col[c] < N;
  }
  const int m0 = blockIdx.y * TILE_M;
  const int kb_begin = blockIdx.z * KB_SPLIT;
  const int kb_end = min(KB, kb_begin + KB_SPLIT);
  const int u_begin = blockIdx.z * U_SPLIT, u_end = min(UNITS, u_begin + U_SPLIT);
]==]

-- What both q4s expansions use (C.sparse below, rendered by q4_decode and
-- q4_dqgemm, and q4s_imma's own): the byte permutation, the window of a
-- block's codes that the eight rows of chunk q draw from, the split of a
-- window into bytes, and the PRMT selector nibble of one row. A source
-- that renders C.sparse renders this first.
C.sparse_codes = [==[
__device__ __forceinline__ u32 prmt(u32 a, u32 b, u32 sel) {
  u32 r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

// A block's 16 kept codes lie in two words in row order, c0 codes 0..7 and
// c1 codes 8..15; the p_q kept rows of chunk q (byte q of the mask) hold
// codes p_0 + .. + p_(q-1) onwards. The window brings them down to nibbles
// 0 .. p_q - 1 with shifts by the kept counts of the chunk itself and of
// chunk 0 or 3, never by a running count through the block:
//   chunk 0: c0;  chunk 1: c1:c0 >> 4 p_0;  chunk 3: c1 >> (32 - 4 p_3),
//   its codes being the block's last;  chunk 2: c1:c0 << 4 p_3 (high
//   word: its last code on top), then >> (32 - 4 p_2).
// `other` is 4 p_0 (chunk 1) or 4 p_3 (chunk 2), `down` 32 - 4 p_q (chunks
// 2 and 3): fields of table entries that the chunks read anyway where the
// table has room for them (q4s_counts_word0/1), else popcounts
// (q4s_other). Shifts of 32 clamp to an empty window.
__device__ __forceinline__ u32 q4s_window(u32 c0, u32 c1, int q, u32 other, u32 down) {
  if (q == 0) return c0;
  if (q == 1) return __funnelshift_rc(c0, c1, other);
  u32 r;
  asm("shr.b32 %0, %1, %2;" : "=r"(r) : "r"(q == 2 ? __funnelshift_lc(c0, c1, other) : c1), "r"(down));
  return r;
}

// q4s_window's `other` from the mask word m itself.
__device__ __forceinline__ u32 q4s_other(u32 m, int q) { return 4 * __popc(q == 1 ? m & 0xffu : m >> 24); }

// The top bytes of a table entry's first two words, for mask byte m8 with
// p kept rows: 4 p (the `other` of the chunk after chunk 0, or before
// chunk 3) and 32 - 4 p (its own `down`). PRMT reads a selector's low 16
// bits only, so they ride along free.
__device__ __forceinline__ u32 q4s_counts_word0(int m8) { return (u32)(4 * __popc(m8)) << 24; }
__device__ __forceinline__ u32 q4s_counts_word1(int m8) { return (u32)(32 - 4 * __popc(m8)) << 24; }
// ... read back as w >> 24, on the FMA pipe (IMAD.HI) rather than the
// integer pipe, which bounds the expansion.
__device__ __forceinline__ u32 q4s_count_field(u32 w) { return __umulhi(w, 256u); }

// A window as bytes: codes 0, 2, 4, 6 in even's bytes 0..3 and codes 1, 3,
// 5, 7 in odd's. odd = (src - even) >> 4 is an IMAD and an IMAD.HI, on the
// FMA pipe: the integer pipe does one AND.
__device__ __forceinline__ void q4s_split(u32 src, u32 &even, u32 &odd) {
  even = src & 0x0f0f0f0fu;
  u32 d;
  asm("mad.lo.u32 %0, %1, -1, %2;" : "=r"(d) : "r"(even), "r"(src));
  odd = __umulhi(d, 1u << 28);
}

// The PRMT selector nibbles of the eight rows of a chunk with mask byte
// m8, over the split of its window, row r in nibble r: the byte of its
// code, rank = kept rows below r, rank / 2 in even for an even rank and
// 4 + rank / 2 in odd for an odd one; or 8 for a pruned row, PRMT's "sign
// of byte 0", 0x00 for a code (bytes below 0x80). All eight at once: m8's
// bits spread one a nibble, their ranks (sums over the nibbles below, at
// most 7: no carries) by one multiply, each rank's bits moved to its byte.
__device__ __forceinline__ u32 q4s_source_nibbles(u32 m8) {
  u32 kept = (m8 | m8 << 12) & 0x000f000fu;
  kept = (kept | kept << 6) & 0x03030303u;
  kept = (kept | kept << 3) & 0x11111111u;  // nibble r: bit r of m8
  const u32 rank = kept * 0x11111110u;
  const u32 byte = (rank >> 1 & 0x33333333u) | (rank << 2 & 0x44444444u);
  return (byte & kept * 7u) | (kept ^ 0x11111111u) << 3;
}
// Row r's nibble of those.
__device__ __forceinline__ u32 q4s_source_byte(u32 nibbles, int r) { return nibbles >> (4 * r) & 0xfu; }
]==]

-- The 16:32 sparse format (q4s): a 32-row block of one column is a mask
-- word (bit j: row j kept) and two words holding the 16 kept codes in row
-- order. q4s_expand gives eight rows 8q .. 8q+7 of such a block as dense
-- fp16 pairs in q4_unpack's order, with every pruned row flagged so the
-- caller zeroes it after scaling (a pruned weight is exactly 0, not
-- (0 - z) * s). Symmetric weights need no flags: there a pruned row reads
-- as code 8, and (8 - 8) * s is exactly 0.
--
-- q4s_window (C.sparse_codes) brings the chunk's codes to the bottom of a
-- word, a byte permutation (PRMT) moves code number rank(r) to row r, and
-- PRMT's sign mode writes 0x00 for a pruned row. The selectors of those
-- permutations depend only on the mask byte of the eight rows: they come
-- from a 256-entry table that every block builds in shared memory
-- (q4s_build_table), in Q4S_COPIES copies (a template constant): 32, one
-- per bank, where the lookups are the hot loop (32 lanes looking up random
-- entries of one copy meet bank conflicts on most lookups), 1 where they
-- are not.
--
-- With Q4S_BARE = 1 (per-channel weights, whose scale and zero the caller
-- applies after the sum) q4s_expand_bare gives the rows as bare codes
-- instead, q * 2^-24 as q4_unpack_bare does, with their keep flags beside
-- them: its table has four selectors an entry, one PRMT for each pair of
-- rows and one for its flags, and the window's `down` in the top byte of
-- the second (q4s_counts_word1); 8 copies of 16-byte entries keep a warp's
-- lookups conflict-free (a quarter warp reads 128 bytes at once).
C.sparse = [==[

constexpr int Q4S_COPIES = {{Q4S_COPIES}}, Q4S_TABLE_WORDS = 256 * Q4S_COPIES * {{Q4S_BARE == 1 and 4 or 1}};
// Laid out [256][Q4S_COPIES]: lane l reads copy l % Q4S_COPIES.
// The rows of pair i, in the order the caller reads x: neighbours (2i,
// 2i + 1) as x lies in memory, or q4_unpack's (i, i + 4).
__device__ __forceinline__ int q4s_pair_row(int i, int second) {
  return {{Q4S_NEIGHBOURS}} ? 2 * i + second : i + 4 * second;
}
//$ if Q4S_BARE == 1 then
// Entry m8: four selectors, one for each pair i of rows, each making the
// pair's half2 in one PRMT: byte 0 the code of its first row (0x00 for a
// pruned row: sign mode), byte 1 0x00, byte 2 the code of its second row,
// byte 3 0x00. The same selector over bytes 0x01 gives the pair's keep
// flags (1 kept, 0 pruned), as bare as the codes.
__device__ __forceinline__ void q4s_build_table(u32 *table) {
  for (int m8 = threadIdx.x; m8 < 256; m8 += blockDim.x) {
    const u32 nib = q4s_source_nibbles(m8);
    uint4 e;
    u32 *sel = reinterpret_cast<u32 *>(&e);
    for (int i = 0; i < 4; ++i)
      sel[i] = q4s_source_byte(nib, q4s_pair_row(i, 0)) | 0x8080u | q4s_source_byte(nib, q4s_pair_row(i, 1)) << 8;
    sel[1] |= q4s_counts_word1(m8);
    // copies staggered by bank: the eight lanes of a quarter warp store
    // eight different copies, one 16-byte bank group each (in copy order,
    // all eight would fall on the same four banks)
    for (int l = 0; l < Q4S_COPIES; ++l)
      reinterpret_cast<uint4 *>(table)[m8 * Q4S_COPIES + (l + m8) % Q4S_COPIES] = e;
  }
}

// This lane's entry for chunk q of mask word m (the multiply by the
// entry's stride on the FMA pipe).
__device__ __forceinline__ uint4 q4s_entry(const u32 *table, u32 m, int q) {
  u32 off;
  asm("mad.lo.u32 %0, %1, %2, %3;" : "=r"(off) : "r"(prmt(m, 0u, 0x4440u + q)), "n"(Q4S_COPIES * 16),
      "r"((u32)(threadIdx.x % Q4S_COPIES) * 16u));
  return *reinterpret_cast<const uint4 *>(reinterpret_cast<const char *>(table) + off);
}

// The rows of one chunk, from its entry e and window src (q4s_window), as
// bare codes, b[i] = the rows of pair i (a pruned row 0), and keep[i]
// their keep flags, bare likewise. (A mask word without 16 bits set reads
// codes that are not its own; callers test __popc(m) == 16.)
__device__ __forceinline__ void q4s_expand_bare(uint4 e, u32 src, u32 (&b)[4], u32 (&keep)[4]) {
  u32 even, odd;
  q4s_split(src, even, odd);
  const u32 sel[4] = {e.x, e.y, e.z, e.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    b[i] = prmt(even, odd, sel[i]);
    keep[i] = prmt(0x01010101u, 0x01010101u, sel[i]);
  }
}
//$ else
// Entry m8: nibbles 2i and 2i + 1 select the code bytes of pair i's rows,
// copies staggered by bank.
__device__ __forceinline__ void q4s_build_table(u32 *table) {
  for (int m8 = threadIdx.x; m8 < 256; m8 += blockDim.x) {
    const u32 nib = q4s_source_nibbles(m8);
    u32 sel = 0;
    for (int p = 0; p < 8; ++p) sel |= q4s_source_byte(nib, q4s_pair_row(p >> 1, p & 1)) << (4 * p);
#pragma unroll
    for (int l = 0; l < Q4S_COPIES; ++l) table[m8 * Q4S_COPIES + (l + m8) % Q4S_COPIES] = sel;
  }
}

// Rows 8q .. 8q+7 (q = 0..3) of the block with mask m and code words c0,
// c1: v[i] = the rows of pair i as 1024 + code, and pruned[i] 0xffff in
// the half of each pruned row (0 everywhere for symmetric weights, whose
// pruned rows read as code 8). The window's shifts come from popcounts
// (this table has no room for them). (A mask word without 16 bits set
// reads codes that are not its own; callers test __popc(m) == 16.)
__device__ __forceinline__ void q4s_expand(u32 m, u32 c0, u32 c1, int q, const u32 *table, half2 (&v)[4],
                                           u32 (&pruned)[4]) {
  const u32 sel = table[((m >> (8 * q)) & 0xffu) * Q4S_COPIES + (threadIdx.x % Q4S_COPIES)];
  const u32 src = q4s_window(c0, c1, q, q4s_other(m, q), 32 - 4 * __popc((m >> (8 * q)) & 0xffu));
  u32 even, odd;
  q4s_split(src, even, odd);
//$ if SYMMETRIC == 1 then
  // Symmetric weights: a pruned row may read as code 8, which (8 - 8) * s
  // makes exactly 0, so no mask is needed. The deposit writes 0 for a
  // pruned row: codes go in XORed with 8 and come out XORed back, a kept
  // row as its code, a pruned one as 8.
  even ^= 0x08080808u;
  odd ^= 0x08080808u;
  const u32 d0 = prmt(even, odd, sel) ^ 0x08080808u, d1 = prmt(even, odd, sel >> 16) ^ 0x08080808u;
//$ else
  // one code byte per row: pairs 0, 1 and 2, 3
  const u32 d0 = prmt(even, odd, sel), d1 = prmt(even, odd, sel >> 16);
//$ end
  const u32 MAGIC = 0x64646464u;
  u32 h[4] = {prmt(d0, MAGIC, 0x4140), prmt(d0, MAGIC, 0x4342), prmt(d1, MAGIC, 0x4140), prmt(d1, MAGIC, 0x4342)};
//$ if SYMMETRIC == 1 then
#pragma unroll
  for (int i = 0; i < 4; ++i) pruned[i] = 0;
//$ else
  // A pruned row's nibble has bit 3 set. Pair i is nibbles 2i, 2i+1:
  // sel << 4 puts the first's flag on the sign bit of byte i, sel the
  // second's.
  const u32 ev = sel << 4;
  pruned[0] = prmt(ev, sel, 0xCC88);
  pruned[1] = prmt(ev, sel, 0xDD99);
  pruned[2] = prmt(ev, sel, 0xEEAA);
  pruned[3] = prmt(ev, sel, 0xFFBB);
//$ end
#pragma unroll
  for (int i = 0; i < 4; ++i) v[i] = *reinterpret_cast<half2 *>(&h[i]);
}

// Two NaN halves for a mask word without 16 bits set (it broke the
// format: its column comes out NaN, never a wrong product), else 0.
__device__ __forceinline__ u32 q4s_broken(u32 m) { return __popc(m) != 16 ? 0x7fff7fffu : 0u; }

// A pair from q4s_expand scaled to (q - z) * s, its pruned rows exactly 0
// and NaN if the block's mask is broken (q4s_broken), as fp16 bits.
__device__ __forceinline__ u32 q4s_scale(half2 v, half2 s, half2 neg_zs, u32 pruned, u32 broken) {
  return (q4_h2_bits(q4_scale(v, s, neg_zs)) & ~pruned) | broken;
}
//$ end
]==]

-- 16-byte global -> shared copies. On sm_80+ they are cp.async (the copy
-- runs while the warp computes); zero-filled when `valid` is false, which is
-- how rows past M read as zeros. Older GPUs copy synchronously.
C.async_copy = [==[
__device__ __forceinline__ void copy16(void *smem, const void *gmem, bool valid) {
//$ if ARCH >= 80 then
  u32 dst = (u32)__cvta_generic_to_shared(smem);
  int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(gmem), "r"(bytes));
//$ else
  *reinterpret_cast<uint4 *>(smem) = valid ? *reinterpret_cast<const uint4 *>(gmem) : make_uint4(0, 0, 0, 0);
//$ end
}
__device__ __forceinline__ void copy_commit() {
//$ if ARCH >= 80 then
  asm volatile("cp.async.commit_group;");
//$ end
}
template <int PENDING> __device__ __forceinline__ void copy_wait() {
//$ if ARCH >= 80 then
  asm volatile("cp.async.wait_group %0;" :: "n"(PENDING));
//$ end
}
]==]

-- Writing the block's finished tile. `tile(r, c)` is the block's fp32 sum
-- for row r, column c of the tile (a macro the kernel defines before this
-- piece). Without split-K the block writes fp16 y directly. With split-K
-- every block stores its fp32 partial in the workspace; the last block to
-- arrive on a tile (an atomic ticket) adds the partials in a fixed order,
-- so the result does not depend on timing, writes y once and resets the
-- ticket for the next launch.
C.epilogue = [==[
  {
    const int row0 = blockIdx.y * TILE_M, col0 = blockIdx.x * TILE_N;
//$ if SPLIT_K == 1 then
    for (int i = threadIdx.x; i < TILE_M * TILE_N / 2; i += THREADS) {
      const int r = i / (TILE_N / 2), c = 2 * (i % (TILE_N / 2));
      if (row0 + r < M && col0 + c < N)
        *reinterpret_cast<half2 *>(&y[(size_t)(row0 + r) * N + col0 + c]) =
            __floats2half2_rn(tile(r, c), tile(r, c + 1));
    }
//$ elseif SPLIT_CLUSTER == 1 then
    // The SPLIT_K blocks of this tile are one cluster (sm_90): each puts its
    // partial tile into its own shared memory (epi_buf, which the template
    // gives, TILE_M * TILE_N floats, free once tile() has been read), and
    // block z sums part z of all of them through distributed shared memory
    // and writes it to y. No workspace, no counters, no fences through L2.
    constexpr int PAIRS = TILE_M * TILE_N / 2, PER_THREAD = (PAIRS + THREADS - 1) / THREADS;
    constexpr int PART = (PAIRS + SPLIT_K - 1) / SPLIT_K;  // pairs each block sums
    auto in_y = [&](int i) {
      return i < PAIRS && row0 + i / (TILE_N / 2) < M && col0 + 2 * (i % (TILE_N / 2)) < N;
    };
    float2 mine[PER_THREAD];
#pragma unroll
    for (int j = 0; j < PER_THREAD; ++j) {
      const int i = threadIdx.x + j * THREADS, r = i / (TILE_N / 2), c = 2 * (i % (TILE_N / 2));
      mine[j] = in_y(i) ? make_float2(tile(r, c), tile(r, c + 1)) : make_float2(0.f, 0.f);
    }
    __syncthreads();  // tile() has read what epi_buf overlays
    float2 *part = reinterpret_cast<float2 *>(epi_buf);
#pragma unroll
    for (int j = 0; j < PER_THREAD; ++j)
      if (threadIdx.x + j * THREADS < PAIRS) part[threadIdx.x + j * THREADS] = mine[j];
    q4_cluster_sync();  // every block's partial tile written and visible
    const u32 rank = blockIdx.z, local = (u32)__cvta_generic_to_shared(part);
    for (int i = rank * PART + threadIdx.x; i < min(PAIRS, (int)(rank + 1) * PART); i += THREADS) {
      if (!in_y(i)) continue;
      float2 sum = make_float2(0.f, 0.f);
#pragma unroll
      for (int z = 0; z < SPLIT_K; ++z) {
        const float2 p = q4_cluster_load(local + 8 * i, z);
        sum.x += p.x;
        sum.y += p.y;
      }
      const int r = i / (TILE_N / 2), c = 2 * (i % (TILE_N / 2));
      *reinterpret_cast<half2 *>(&y[(size_t)(row0 + r) * N + col0 + c]) = __floats2half2_rn(sum.x, sum.y);
    }
    q4_cluster_sync();  // no block leaves while another still reads its part
//$ else
    float *part = workspace + (size_t)blockIdx.z * M * N;
    for (int i = threadIdx.x; i < TILE_M * TILE_N / 2; i += THREADS) {
      const int r = i / (TILE_N / 2), c = 2 * (i % (TILE_N / 2));
      if (row0 + r < M && col0 + c < N)
        *reinterpret_cast<float2 *>(&part[(size_t)(row0 + r) * N + col0 + c]) =
            make_float2(tile(r, c), tile(r, c + 1));
    }
    __threadfence();  // partials visible device-wide before the ticket
    __shared__ u32 ticket;
    __syncthreads();
    u32 *counter = counters + blockIdx.y * gridDim.x + blockIdx.x;
    if (threadIdx.x == 0) ticket = atomicAdd(counter, 1u);
    __syncthreads();
    if (ticket == SPLIT_K - 1) {  // last block of this tile: reduce
      __threadfence();
      for (int i = threadIdx.x; i < TILE_M * TILE_N / 2; i += THREADS) {
        const int r = i / (TILE_N / 2), c = 2 * (i % (TILE_N / 2));
        if (row0 + r < M && col0 + c < N) {
          float2 sum = make_float2(0.f, 0.f);
#pragma unroll
          for (int z = 0; z < SPLIT_K; ++z) {
            const float2 p = __ldcg(reinterpret_cast<const float2 *>(
                &workspace[((size_t)z * M + row0 + r) * N + col0 + c]));
            sum.x += p.x;
            sum.y += p.y;
          }
          *reinterpret_cast<half2 *>(&y[(size_t)(row0 + r) * N + col0 + c]) =
              __floats2half2_rn(sum.x, sum.y);
        }
      }
      if (threadIdx.x == 0) *counter = 0;
    }
//$ end
  }
]==]

-- Act-order x gathered once, by a kernel of its own: xp[m][k] =
-- x[m][perm[k]]. For the families that copy x into shared memory in bulk
-- and cannot gather it in the copy (q4_dqgemm, q4_mma, q4_wgmma, q4_wmma),
-- and for q4_decode's XG = 3, which then run as for weights in plain row
-- order. runtime/q4_dispatch.c launches it before the kernel wherever a
-- variant's source has it, M x Y blocks of 256 threads, and picks Y; any Y
-- gathers every column. With Y = 1 and K up to 16384 (32 KB of fp16) a
-- block reads its row whole into shared memory, coalesced, and gathers
-- from there. Else blocks gather straight from global memory, eight
-- columns a thread and 2048 a block, Y blocks apart, whose scattered
-- 2-byte loads take the L1 one sector each. With the staged gather the
-- whole product at M = 2048 took 0.80x the time at 4096 x 11008 and 0.72x
-- at 4096 x 16384 on the H100, but for a few rows M x ceil(K / 2048)
-- blocks finish sooner (docs/BENCHMARKS.md, 2026-12-05 fifth): the
-- dispatch's choice. Each family renders it inside its own act-order
-- condition.
C.gather_x = [==[

{{ render(C.gather8) }}
extern "C" __global__ void __launch_bounds__(256)
q4tune_gather_x(const half *__restrict__ x, const int *__restrict__ perm, half *__restrict__ xp)
{
  const int m = blockIdx.x;
//$ if K <= 16384 then
  if (gridDim.y == 1) {  // the whole row is this block's: stage it
    __shared__ half row[K];
    const uint4 *src = reinterpret_cast<const uint4 *>(x + (size_t)m * K);
    for (int i = threadIdx.x; i < K / 8; i += 256) reinterpret_cast<uint4 *>(row)[i] = __ldg(src + i);
    __syncthreads();
    for (int k = threadIdx.x; k < K; k += 256) xp[(size_t)m * K + k] = row[__ldg(&perm[k])];
    return;
  }
//$ end
  for (int k0 = 8 * (blockIdx.y * 256 + threadIdx.x); k0 < K; k0 += 8 * 256 * gridDim.y)
    *reinterpret_cast<uint4 *>(&xp[(size_t)m * K + k0]) = q4_gather_x8(x, perm, m, k0);
}
]==]

-- Eight columns of act-order x in the weights' row order, through perm:
-- for C.gather_x's kernel, and for the prelude's q4_load_x8 where the
-- kernel gathers in its own loads (GATHERS).
C.gather8 = [==[
// x[row][perm[k0]] .. x[row][perm[k0 + 7]] (k0 a multiple of 8): act-order
// weights had their rows sorted by group at import.
__device__ __forceinline__ uint4 q4_gather_x8(const half *x, const int *perm, int row, int k0) {
  const int4 p0 = __ldg(reinterpret_cast<const int4 *>(&perm[k0]));
  const int4 p1 = __ldg(reinterpret_cast<const int4 *>(&perm[k0 + 4]));
  const half *xr = x + (size_t)row * K;
  const int idx[8] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
  uint4 v;
  unsigned short *h = reinterpret_cast<unsigned short *>(&v);
#pragma unroll
  for (int i = 0; i < 8; ++i) h[i] = __ldg(reinterpret_cast<const unsigned short *>(xr + idx[i]));
  return v;
}
]==]

-- The kernel signature every family shares; runtime/q4_dispatch.c (q4_launch) passes the
-- arguments in this order. Meta's min_blocks, where set, becomes the
-- launch bounds' minimum of blocks per SM.
C.signature = [==[
//$ local LAUNCH_MIN = MIN_BLOCKS > 0 and ", " .. MIN_BLOCKS or ""
//$ if SPLIT_CLUSTER == 1 then
// the SPLIT_K blocks of one tile (blockIdx.z) run together as a cluster
extern "C" __global__ void __launch_bounds__({{THREADS}}{{LAUNCH_MIN}}) __cluster_dims__(1, 1, {{SPLIT_K}})
//$ else
extern "C" __global__ void __launch_bounds__({{THREADS}}{{LAUNCH_MIN}})
//$ end
q4tune_kernel(const u32 *__restrict__ qweight, const half *__restrict__ scales,
              const half *__restrict__ zeros, const u32 *__restrict__ mask,
              const int *__restrict__ perm, const half *__restrict__ x, half *__restrict__ y, int M,
              float *__restrict__ workspace, u32 *__restrict__ counters)
]==]

return C
