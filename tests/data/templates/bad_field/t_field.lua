return {
  name = "t_field",
  formats = {"q4"},
  params = {{"X", {1}}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  defualt = function(s, m) return {X = 1} end,
  source = "x",
}
