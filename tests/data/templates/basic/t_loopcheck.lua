return {
  name = "t_loopcheck",
  formats = {"q4s"},
  params = {{"X", {1}}},
  check = function(p, s) while true do end end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  source = "x",
}
