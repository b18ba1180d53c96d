-- A parameter added after variants were stored (`optional`): a params
-- string without it takes its first value, which renders as before.
return {
  name = "t_optional",
  formats = {"q4"},
  params = {{"A", {1, 2}}, {"NEW", {0, 5}, optional = true}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  source = "{{A}}{{NEW == 5 and ' new' or ''}}",
}
