-- priority 5: offers a default only for m == 7, and it fails check().
return {
  name = "t_prio_a", formats = {"q4"}, priority = 5,
  params = {{"X", {1, 2}}},
  check = function(p, s) return p.X == 1, "X must be 1" end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  default = function(s, m) if m == 7 then return {X = 2} end end,
  source = "a",
}
