-- Parameters that exist for some shapes only (`when`): B varies for grouped
-- weights alone; C's when answers 1, not a boolean, when K is 1024.
return {
  name = "t_when",
  formats = {"q4"},
  params = {{"A", {1, 2}},
            {"B", {0, 5, 7}, when = function(s) return s.group_size < s.k end},
            {"C", {3, 4}, when = function(s) if s.k == 1024 then return 1 end return false end}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  source = "{{A}} {{B}} {{C}}",
}
