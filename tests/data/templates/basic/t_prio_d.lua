-- q4s only, priority 1: takes m <= 100.
return {
  name = "t_prio_d", formats = {"q4s"}, priority = 1,
  params = {{"X", {1}}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  default = function(s, m) if m <= 100 then return {X = 1.0} end end,
  source = "d {{X}}",
}
