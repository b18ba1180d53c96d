-- q4_decode: int4 matrix product for small M (decode steps), on the tensor
-- cores through mma.sync.m16n8k16 with the weights dequantized in registers.
--
-- Why this shape of kernel: at M <= 64 the product is bound by reading W, so
-- every thread streams 16-byte weight loads and the 4-bit codes never touch
-- shared memory. The mma's reduction index k may be permuted freely as long
-- as x and W agree, so each thread's fragment comes straight out of the one
-- word it loaded: lane 4g + t loads word row 4kb + t (rows 32kb + 8t .. +7)
-- of four neighbouring columns, and x is read in the matching order.
local C = import("_q4common")

local function ceil_div(a, b) return (a + b - 1) // b end

local T = {
  name = "q4_decode",
  formats = { "q4" },
  priority = 10,
  params = {
    { "WARPS_N", { 1, 2, 4 } },    -- warps side by side along N
    { "CW",      { 1, 2, 4 } },    -- 32-column strips per warp (x fragments shared by all)
    { "WARPS_K", { 2, 4, 8 } },    -- warps splitting the block's K range
    { "SPLIT_K", { 1, 2, 4, 8 } }, -- blocks splitting K, reduced in the epilogue
    { "M_TILES", { 1, 2, 4 } },    -- 16-row tiles of x per block
    { "UNROLL",  { 2, 4, 8 } },    -- 16-byte weight loads per thread per round
    { "PIPE",    { 0, 1 } },       -- 1: load round r + 1 while computing round r
  },
}

-- Act-order weights: the block's rows of x, gathered once through perm into
-- shared memory ([TILE_M][K / SPLIT_K] fp16), so the loop reads them as
-- plain 16-byte vectors.
local function x_smem(p, s)
  if not s.act_order then return 0 end
  return 16 * p.M_TILES * (ceil_div(s.k // 32, p.SPLIT_K) * 32) * 2
end

function T.meta(p, s)
  local tile_m, tile_n = 16 * p.M_TILES, 32 * p.CW * p.WARPS_N
  return {
    threads = 32 * p.WARPS_N * p.WARPS_K,
    smem = p.WARPS_K * tile_m * tile_n * 4 + x_smem(p, s),
    tile_m = tile_m, tile_n = tile_n, split_k = p.SPLIT_K,
    -- more m tiles only pay off once M fills them
    m_min = p.M_TILES == 1 and 1 or 8 * p.M_TILES + 1,
    m_max = 32 * p.M_TILES,
  }
end

-- What any launch needs: the instructions, the shapes' divisibility, shared
-- memory and registers.
local function valid(p, s)
  if s.arch < 80 then return false, "mma.sync.m16n8k16 needs sm_80" end
  if s.n % 4 ~= 0 or s.k % 32 ~= 0 then return false, "needs N % 4 == 0 and K % 32 == 0" end
  local m = T.meta(p, s)
  if m.smem - x_smem(p, s) > 64 * 1024 then return false, "reduction buffer over 64 KB" end
  if m.smem > C.smem_max(s.arch) then return false, "shared memory over the limit" end
  -- registers for loads in flight: weights plus x rows, twice with PIPE
  local xr = p.M_TILES == 1 and 2 or 1
  if p.UNROLL * (p.CW + xr) * (1 + p.PIPE) > 24 then return false, "too many loads in flight for the registers" end
  if p.M_TILES * p.CW > 4 then return false, "over 64 accumulators per thread" end
  if p.WARPS_N * p.WARPS_K > 16 then return false, "over 512 threads: too few registers per thread" end
  return true
end

-- Valid, and worth timing: the rest prunes the tuner's space (defaults
-- must pass it too, so it never rejects every variant of a valid shape).
function T.check(p, s)
  local ok, why = valid(p, s)
  if not ok then return false, why end
  local m = T.meta(p, s)
  local kb = s.k // 32
  if kb < p.SPLIT_K * p.WARPS_K and (p.SPLIT_K > 1 or p.WARPS_K > 2) then
    return false, "fewer 32-row blocks than warps along K"
  end
  -- Split-K exists to fill the GPU: skip it where column tiles alone give
  -- every SM of a large GPU several blocks.
  local col_tiles = ceil_div(s.n, m.tile_n)
  -- (act-order weights split K also to fit their gathered x in shared memory)
  if p.SPLIT_K > 1 and col_tiles * p.SPLIT_K > 8 * 132 and not s.act_order then
    return false, "split-K not needed: enough column tiles"
  end
  -- (a shape with too little work to fill a GPU at all keeps every variant)
  local fillable = ceil_div(s.n, 32) * kb >= 132 * 4
  if fillable and col_tiles * p.SPLIT_K * p.WARPS_K * p.WARPS_N < 132 * 4 then
    return false, "too few warps to fill a GPU"
  end
  return true
end

function T.default(s, m)
  -- q4_wmma takes larger M, except for act-order weights (see its check)
  if m > 64 and s.n % 64 == 0 and not s.act_order then return nil end
  local p = { WARPS_N = 1, CW = 1, WARPS_K = 8, M_TILES = m <= 16 and 1 or m <= 32 and 2 or 4, UNROLL = 4, PIPE = 0 }
  local col_tiles = ceil_div(s.n, 32)
  for _, split in ipairs({ 1, 2, 4, 8 }) do
    p.SPLIT_K = split
    if col_tiles * split >= 2 * 132 or s.k // 32 < 2 * split * p.WARPS_K then break end
  end
  while s.k // 32 < p.SPLIT_K * p.WARPS_K and p.WARPS_K > 2 do p.WARPS_K = p.WARPS_K // 2 end
  if T.check(p, s) then return p end
  -- Not valid as it stands (act-order x too large for shared memory, or a
  -- small shape): the first choice that passes check with fewer m tiles,
  -- more split-K or fewer warps along K.
  for _, m_tiles in ipairs({ 4, 2, 1 }) do
    for _, split in ipairs(m_tiles <= p.M_TILES and { 1, 2, 4, 8 } or {}) do
      for _, warps_k in ipairs({ 8, 4, 2 }) do
        local q = { WARPS_N = 1, CW = 1, WARPS_K = warps_k, M_TILES = m_tiles, UNROLL = 4, PIPE = 0, SPLIT_K = split }
        if T.check(q, s) then return q end
      end
    end
  end
  return nil
end

function T.constants(p, s)
  return { TEMPLATE = "q4_decode" }
end

T.source = [==[
{{ render(C.prelude) }}
constexpr int WARPS_N = {{WARPS_N}}, WARPS_K = {{WARPS_K}}, CW = {{CW}};
constexpr int M_TILES = {{M_TILES}}, UNROLL = {{UNROLL}}, PIPE = {{PIPE}};
constexpr int KB = K / 32;                              // 32-row blocks of K
constexpr int KB_SPLIT = (KB + SPLIT_K - 1) / SPLIT_K;  // blocks per split

// D += A * B for one 16x8x16 tile: fp16 in, fp32 accumulate.
__device__ __forceinline__ void mma16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Weights are read exactly once: keep them out of L1.
__device__ __forceinline__ uint4 load_stream(const u32 *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

__device__ __forceinline__ u32 h2_bits(half2 h) { return *reinterpret_cast<u32 *>(&h); }

// Scales and zeros of this thread's four columns in one group, as loaded.
struct group_raw {
  uint2 s, z;
};

__device__ __forceinline__ group_raw load_group(const half *scales, const half *zeros, int grp, int col) {
  group_raw g;
  g.s = __ldg(reinterpret_cast<const uint2 *>(&scales[(size_t)grp * N + col]));
//$ if SYMMETRIC == 1 then
  g.z = make_uint2(0x48004800u, 0x48004800u);  // every zero is 8.0
//$ else
  g.z = __ldg(reinterpret_cast<const uint2 *>(&zeros[(size_t)grp * N + col]));
//$ end
  return g;
}

// Scale and -zero*scale of each column, broadcast to both halves. fp16
// multiplication rounds once, like the fp32 product rounded to fp16.
__device__ __forceinline__ void expand_group(const group_raw &g, half2 (&s)[4], half2 (&nzs)[4]) {
  const half2 *s2 = reinterpret_cast<const half2 *>(&g.s), *z2 = reinterpret_cast<const half2 *>(&g.z);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const half2 nz = __hmul2(__hneg2(z2[i]), s2[i]);
    s[2 * i] = __low2half2(s2[i]);
    s[2 * i + 1] = __high2half2(s2[i]);
    nzs[2 * i] = __low2half2(nz);
    nzs[2 * i + 1] = __high2half2(nz);
  }
}

{{ render(C.signature) }}
{
  extern __shared__ float red[];  // [WARPS_K][TILE_M][TILE_N] partial sums, then gathered x
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
//$ if ACT_ORDER == 1 then
  // x[m0 + r][perm[k]] for this block's K range, in the weights' row order:
  // perm is read coalesced, x rows are small and stay in L1/L2.
  constexpr int XK = KB_SPLIT * 32;
  half *xs = reinterpret_cast<half *>(red + WARPS_K * TILE_M * TILE_N);  // [TILE_M][XK]
  {
    const int k0 = kb_begin * 32, rows = min(TILE_M, M - m0), kn = (kb_end - kb_begin) * 32;
    constexpr int B = 8;  // independent loads in flight per thread
    for (int i0 = threadIdx.x; i0 < rows * XK; i0 += B * THREADS) {
      long long src[B];
#pragma unroll
      for (int b = 0; b < B; ++b) {
        const int i = i0 + b * THREADS, r = i / XK, k = i % XK;
        src[b] = i < rows * XK && k < kn ? (long long)(m0 + r) * K + __ldg(&perm[k0 + k]) : -1;
      }
      half v[B];
#pragma unroll
      for (int b = 0; b < B; ++b) v[b] = src[b] >= 0 ? x[src[b]] : __ushort_as_half(0);
#pragma unroll
      for (int b = 0; b < B; ++b)
        if (i0 + b * THREADS < rows * XK) xs[i0 + b * THREADS] = v[b];
    }
    __syncthreads();
  }
  // x[row][k .. k + 7] (k a multiple of 8) from the gathered rows
  auto x8 = [&](int row, int k) {
    return *reinterpret_cast<const uint4 *>(&xs[(row - m0) * XK + k - kb_begin * 32]);
  };
//$ else
  auto x8 = [&](int row, int k) { return q4_load_x8(x, perm, row, k); };
//$ end

  float acc[M_TILES][4 * CW][4];  // [m tile][column j of strip j / 4][mma fragment]
#pragma unroll
  for (int i = 0; i < M_TILES; ++i)
#pragma unroll
    for (int j = 0; j < 4 * CW; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  half2 s[CW][4], nzs[CW][4];
//$ if GROUP_SIZE == K then
#pragma unroll
  for (int c = 0; c < CW; ++c)
    if (col_ok[c]) expand_group(load_group(scales, zeros, 0, col[c]), s[c], nzs[c]);
//$ end

  // One round: UNROLL blocks of 32 rows, WARPS_K apart. Weights and the
  // first m tile's x rows of each block are loaded for a whole round before
  // any use (with PIPE, a round ahead), so their latencies overlap.
  constexpr int STEP = WARPS_K * UNROLL;
  constexpr int XR = M_TILES == 1 ? 2 : 1;  // x rows fetched ahead: g (and g + 8 with one m tile)
  constexpr int GR = GROUP < K ? UNROLL : 1;  // group scales fetched ahead (grouped weights)
  uint4 w[UNROLL][CW], xg[UNROLL][XR];
  group_raw gr[GR][CW];
  auto fetch = [&](int kb0, uint4 (&wv)[UNROLL][CW], uint4 (&xv)[UNROLL][XR], group_raw (&gv)[GR][CW]) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int kb = kb0 + u * WARPS_K;
      const bool ok = kb < kb_end;
#pragma unroll
      for (int c = 0; c < CW; ++c) {
        wv[u][c] = ok && col_ok[c] ? load_stream(&qweight[(size_t)(4 * kb + t) * N + col[c]]) : make_uint4(0, 0, 0, 0);
        if (GR > 1 && ok && col_ok[c]) gv[u % GR][c] = load_group(scales, zeros, kb * 32 / GROUP, col[c]);
      }
#pragma unroll
      for (int i = 0; i < XR; ++i) {
        const int r = m0 + g + 8 * i;
        xv[u][i] = ok && r < M ? x8(r, 32 * kb + 8 * t) : make_uint4(0, 0, 0, 0);
      }
    }
  };
  fetch(kb_begin + wk, w, xg, gr);
  for (int kb0 = kb_begin + wk; kb0 < kb_end; kb0 += STEP) {
//$ if PIPE == 1 then
    uint4 w_next[UNROLL][CW], x_next[UNROLL][XR];
    group_raw g_next[GR][CW];
    fetch(kb0 + STEP, w_next, x_next, g_next);
//$ end
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int kb = kb0 + u * WARPS_K;
      if (kb >= kb_end) break;
      // A fragments of every m tile: rows g and g + 8, x[32kb + 8t .. +7]
      // permuted to match the codes' order (i, i + 4); a[mt][h] feeds the
      // mma of half h (codes 2h, 2h+4 | 2h+1, 2h+5) of every column.
      u32 a[M_TILES][2][4];
#pragma unroll
      for (int mt = 0; mt < M_TILES; ++mt) {
        const int r0 = m0 + mt * 16 + g, r1 = r0 + 8;
        const uint4 xa = mt == 0 ? xg[u][0]
                       : r0 < M ? x8(r0, 32 * kb + 8 * t) : make_uint4(0, 0, 0, 0);
        const uint4 xb = XR == 2 ? xg[u][XR - 1]
                       : r1 < M ? x8(r1, 32 * kb + 8 * t) : make_uint4(0, 0, 0, 0);
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
//$ if GROUP_SIZE < K then
        expand_group(gr[u][c], s[c], nzs[c]);
//$ end
        const u32 words[4] = {w[u][c].x, w[u][c].y, w[u][c].z, w[u][c].w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          half2 v[4];
          q4_unpack(words[j], v);
          u32 b[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) b[i] = h2_bits(q4_scale(v[i], s[c][j], nzs[c][j]));
#pragma unroll
          for (int mt = 0; mt < M_TILES; ++mt) {
            mma16816(acc[mt][4 * c + j], a[mt][0], b[0], b[1]);
            mma16816(acc[mt][4 * c + j], a[mt][1], b[2], b[3]);
          }
        }
      }
    }
//$ if PIPE == 1 then
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
#pragma unroll
      for (int c = 0; c < CW; ++c) {
        w[u][c] = w_next[u][c];
        if (GR > 1) gr[u % GR][c] = g_next[u % GR][c];
      }
#pragma unroll
      for (int i = 0; i < XR; ++i) xg[u][i] = x_next[u][i];
    }
//$ else
    fetch(kb0 + STEP, w, xg, gr);
//$ end
  }

  // Accumulator element e of column tile j is row g + 8(e / 2), column
  // 4(2t + e % 2) + j % 4 of strip j / 4: undo the column interleave here.
#pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt)
#pragma unroll
    for (int j = 0; j < 4 * CW; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = mt * 16 + g + 8 * (e >> 1);
        const int c = wn * 32 * CW + 32 * (j / 4) + 4 * (2 * t + (e & 1)) + j % 4;
        red[(wk * TILE_M + r) * TILE_N + c] = acc[mt][j][e];
      }
  __syncthreads();
  auto tile = [&](int r, int c) {
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < WARPS_K; ++i) sum += red[(i * TILE_M + r) * TILE_N + c];
    return sum;
  };
{{ render(C.epilogue) }}
}
]==]

return T
