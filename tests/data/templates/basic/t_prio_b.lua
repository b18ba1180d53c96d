-- priority 10 (tie with t_prio_c, which sorts after): takes m > 16.
return {
  name = "t_prio_b", formats = {"q4"}, priority = 10,
  params = {{"X", {1, 2}}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  default = function(s, m) if m > 16 then return {X = 2} end end,
  source = "b {{X}}",
}
