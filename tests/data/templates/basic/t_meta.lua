-- meta() validation: CASE picks one mistake (12, 13, 15, 21: valid; 17: valid on sm_90).
local bad = {
  [1] = {threads = 100},
  [2] = {threads = 2048},
  [3] = {smem = -1},
  [4] = {tile_m = 0},
  [5] = {split_k = 0},
  [6] = {m_min = 0},
  [7] = {m_min = 10, m_max = 5},
  [8] = {threads = false},
  [9] = {thread = 32},
  [10] = {smem = 1.5},
  [11] = {threads = "nil"},
  [12] = {m_max = 1e9},
  [13] = {m_max = 1e30, split_k = 4.0},
  [14] = {smem_row = -2},
  [15] = {smem = 100, smem_row = 10, m_max = 8},
  [16] = {split_cluster = 2},
  [17] = {split_cluster = 1, split_k = 4},
  [18] = {split_cluster = 1, split_k = 16},
  [19] = {min_blocks = 33},
  [20] = {min_blocks = -1},
  [21] = {min_blocks = 2},
}
return {
  name = "t_meta",
  formats = {"q4"},
  params = {{"CASE", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}}},
  check = function(p, s) return true end,
  meta = function(p, s)
    local m = {threads = 64, smem = 0, tile_m = 16, tile_n = 32}
    for k, v in pairs(bad[p.CASE]) do m[k] = v end
    if m.threads == "nil" then m.threads = nil end
    return m
  end,
  source = "{{THREADS}} {{SPLIT_K}} {{M_MAX}} {{MIN_BLOCKS}}",
}
