-- `optional` must be a boolean.
return {
  name = "t_optional",
  formats = {"q4"},
  params = {{"A", {1, 2}}, {"X", {0, 1}, optional = 1}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  source = "",
}
