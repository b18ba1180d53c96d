-- check() itself breaks the sandbox: enumerate fails.
return {
  name = "t_enum_os",
  formats = {"q4"},
  params = {{"X", {1}}},
  check = function(p, s) os.execute("true"); return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  source = "x",
}
