-- q4s only, priority 1: takes m <= 100; declines up to 200 saying why, and
-- m = 300 with a reason that is no string.
return {
  name = "t_prio_d", formats = {"q4s"}, priority = 1,
  params = {{"X", {1}}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  default = function(s, m)
    if m <= 100 then return {X = 1.0} end
    if m <= 200 then return nil, "over 100 rows do not fit" end
    if m == 300 then return nil, 42 end
  end,
  source = "d {{X}}",
}
