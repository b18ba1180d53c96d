-- q4_dqgemm: int4 matrix product in two passes, for large M.
--
-- Once M reaches a few hundred rows the product is bound by arithmetic, not
-- by reading W, and the fastest matrix unit path on the GPU is the vendor's
-- fp16 GEMM (on Hopper, cuBLAS uses wgmma). So this family expands CHUNK_N
-- columns of W at a time to fp16 in a scratch buffer that stays in L2 and
-- hands each chunk to cuBLAS (fp32 accumulation). The expansion costs one
-- read of the packed weights and one write plus one read of the fp16 chunk:
-- small next to the GEMM at large M, and the tuner decides where that holds.
-- The kernel below is the expansion pass; runtime/q4_dispatch.c runs the
-- chunks. Sparse weights (q4s) expand through the same q4s_expand as
-- q4_decode's, so the GEMM sees pruned weights as exact zeros.
local C = import("_q4common")

local THREADS = 256

local T = {
  name = "q4_dqgemm",
  formats = { "q4", "q4s" },
  priority = 7,  -- asked before q4_wgmma: from M = 129 (q4s) or 257 its default comes first
  params = {
    { "CHUNK_N", { 1024, 2048, 4096, 8192 } },  -- columns expanded per pass
  },
}

function T.meta(p, s)
  return {
    threads = THREADS, smem = 0,
    tile_m = 1, tile_n = 4 * THREADS,   -- one thread: 4 columns x 8 rows
    split_k = 1, chunk_n = p.CHUNK_N,
    m_min = 128,
  }
end

function T.check(p, s)
  if s.n % 4 ~= 0 then return false, "needs N % 4 == 0" end
  if s.format == "q4s" and s.act_order then return false, "sparse weights have no act-order" end
  if p.CHUNK_N > s.n and p.CHUNK_N ~= 1024 then return false, "chunk wider than N" end
  -- the fp16 chunk should fit in L2 with room to spare
  if s.k * p.CHUNK_N * 2 > 64 * 1024 * 1024 then return false, "chunk over 64 MB" end
  return true
end

-- The default where cuBLAS loads, from M = 129 for q4s and M = 257 for
-- dense weights (M buckets 256 and 512), with the widest chunk that fits.
-- Measured on the H200 against the single-pass defaults on four llama
-- shapes, it took less time at every M from there on (dense 22016 x 4096
-- at M = 300 aside, 4 % more), and more at M = 200 and 256 for dense
-- 22016 x 4096 and 12288 x 4096. The fused kernels' defaults serve the
-- rest.
function T.default(s, m)
  local from = s.format == "q4s" and 256 or 512
  if not s.cublas or m < from then return nil end
  for _, chunk in ipairs({ 8192, 4096, 2048, 1024 }) do
    local p = { CHUNK_N = chunk }
    if T.check(p, s) then return p end
  end
  return nil
end

function T.constants(p, s)
  -- q4s: the expansion is not this pass's bottleneck, one table copy will do
  -- (q4s_expand's pairs in q4_unpack's order, (i, i + 4), as the dense path's)
  return { TEMPLATE = "q4_dqgemm", Q4S_COPIES = 1, Q4S_BARE = 0, Q4S_NEIGHBOURS = 0 }
end

T.source = [==[
{{ render(C.prelude, { GATHERS = 0 }) }}
//$ if SPARSE == 1 then
{{ render(C.sparse_codes) }}
{{ render(C.sparse) }}
//$ end
constexpr int CHUNK_N = {{CHUNK_N}};

// w[k][c] = (q - z) * s for columns n0 .. n0 + cols - 1 of W, as fp16,
// row-major with row length cols. Thread: word row blockIdx.y (rows
// 8r .. 8r + 7), four neighbouring columns; a warp reads 512 contiguous
// bytes and writes 256 contiguous bytes per row.
extern "C" __global__ void __launch_bounds__(THREADS)
q4tune_dequant(const u32 *__restrict__ qweight, const half *__restrict__ scales,
               const half *__restrict__ zeros, const u32 *__restrict__ mask, half *__restrict__ w, int n0,
               int cols)
{
  const int c = 4 * (blockIdx.x * THREADS + threadIdx.x);  // column within the chunk
  const int r = blockIdx.y;                                 // word row: rows 8r .. 8r + 7
//$ if SPARSE == 1 then
  __shared__ u32 table[Q4S_TABLE_WORDS];
  q4s_build_table(table);
  __syncthreads();
  if (c >= cols) return;
  // block r / 4 of 32 rows; this thread's eight are number r % 4 in it
  const int b = r / 4;
  const uint4 mv = __ldg(reinterpret_cast<const uint4 *>(&mask[(size_t)b * N + n0 + c]));
  const uint4 q0 = __ldg(reinterpret_cast<const uint4 *>(&qweight[(size_t)(2 * b) * N + n0 + c]));
  const uint4 q1 = __ldg(reinterpret_cast<const uint4 *>(&qweight[(size_t)(2 * b + 1) * N + n0 + c]));
  const u32 mw[4] = {mv.x, mv.y, mv.z, mv.w}, c0[4] = {q0.x, q0.y, q0.z, q0.w}, c1[4] = {q1.x, q1.y, q1.z, q1.w};
//$ else
  if (c >= cols) return;
  const uint4 q = __ldg(reinterpret_cast<const uint4 *>(&qweight[(size_t)r * N + n0 + c]));
  const u32 words[4] = {q.x, q.y, q.z, q.w};
//$ end
  const int grp = 8 * r / GROUP;
  const uint2 sv = __ldg(reinterpret_cast<const uint2 *>(&scales[(size_t)grp * N + n0 + c]));
//$ if SYMMETRIC == 1 then
  const uint2 zv = make_uint2(0x48004800u, 0x48004800u);  // every zero is 8.0
//$ else
  const uint2 zv = __ldg(reinterpret_cast<const uint2 *>(&zeros[(size_t)grp * N + n0 + c]));
//$ end
  const half *sh = reinterpret_cast<const half *>(&sv), *zh = reinterpret_cast<const half *>(&zv);
  half out[8][4];  // [row][column]
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const half2 s2 = __half2half2(sh[j]), nzs2 = __half2half2(q4_neg_zs(zh[j], sh[j]));
    half2 v[4];
//$ if SPARSE == 1 then
    u32 pruned[4];
    q4s_expand(mw[j], c0[j], c1[j], r % 4, table, v, pruned);
    const u32 broken = q4s_broken(mw[j]);
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // v[i] = rows (i, i + 4)
      const u32 bits = q4s_scale(v[i], s2, nzs2, pruned[i], broken);
      const half2 d = *reinterpret_cast<const half2 *>(&bits);
      out[i][j] = __low2half(d);
      out[i + 4][j] = __high2half(d);
    }
//$ else
    q4_unpack(words[j], v);  // v[i] = rows (i, i + 4)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const half2 d = q4_scale(v[i], s2, nzs2);
      out[i][j] = __low2half(d);
      out[i + 4][j] = __high2half(d);
    }
//$ end
  }
#pragma unroll
  for (int i = 0; i < 8; ++i)
    *reinterpret_cast<uint2 *>(&w[(size_t)(8 * r + i) * cols + c]) = *reinterpret_cast<const uint2 *>(out[i]);
}
//$ if ACT_ORDER == 1 then
{{ render(C.gather_x) }}
//$ end
]==]

return T
