-- Rendering test: test_generator.c compares the output line by line.
local L = import("_lib")
local function twice(x) return 2 * x end
helper = "hi"

return {
  name = "t_text",
  formats = {"q4", "q4s"},
  priority = 50,
  params = {
    {"A", {1, 2, 3}},
    {"B", {10, 20}},
  },
  check = function(p, s)
    if p.A == 3 and p.B == 20 then return false, "A=3 with B=20" end
    return true
  end,
  meta = function(p, s)
    return {threads = 32 * p.A, smem = 4 * p.B, tile_m = p.A, tile_n = p.B,
            split_k = 1, m_min = 1, m_max = 1e9}
  end,
  constants = function(p, s)
    return {HALF = p.B / 2, FRAC = 0.5, FLAG = p.A == 2, NAME = "t"}
  end,
  source = [==[
// {{ TEMPLATE }} A={{A}} B={{ B }}
constexpr int half = {{HALF}};
constexpr float frac = {{ FRAC }};
constexpr bool flag = {{FLAG}}, nflag = {{ not FLAG }};
const char *name = "{{NAME}}";
//$ for i = 0, A - 1 do
  x[{{i}}] = {{ i * B }};
//$ end
//$ if B > 10 then
  big();
//$ else
  small();
//$ end
    //$ local sq = A * A
  sq = {{sq}}, n = {{N}}, k = {{K}}, g = {{GROUP_SIZE}}, {{FORMAT}}, sm_{{ARCH}};
  threads = {{THREADS}}, smem={{SMEM}}, {{TILE_M}}x{{TILE_N}}, split {{SPLIT_K}}, m {{M_MIN}}..{{M_MAX}};
{{ render(import("_lib").snippet) }}
{{ render(L.with_x, {X = 7}) }}
{{ twice(A) }} {{ helper }}
end]==],
}
