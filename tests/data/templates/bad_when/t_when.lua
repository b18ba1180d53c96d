return {
  name = "t_when",
  formats = {"q4"},
  params = {{"X", {1, 2}, when = true}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  source = "x",
}
