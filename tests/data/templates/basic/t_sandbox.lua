-- Each WHAT reaches for something templates must not have.
return {
  name = "t_sandbox",
  formats = {"q4"},
  params = {{"WHAT", {1, 2, 3, 4, 5, 6, 7}}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  source = [==[
//$ if WHAT == 1 then
{{ io.open("/etc/passwd") }}
//$ elseif WHAT == 2 then
{{ os.execute("true") }}
//$ elseif WHAT == 3 then
{{ require("os") }}
//$ elseif WHAT == 4 then
{{ load("return 1")() }}
//$ elseif WHAT == 5 then
{{ string.dump(function() end) }}
//$ elseif WHAT == 6 then
{{ ("x").dump(function() end) }}
//$ else
{{ nosuch_name }}
//$ end
]==],
}
