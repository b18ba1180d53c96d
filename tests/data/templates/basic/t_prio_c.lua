return {
  name = "t_prio_c", formats = {"q4"}, priority = 10,
  params = {{"X", {1, 2}}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  default = function(s, m) return {X = 1} end,
  source = "c {{X}}",
}
