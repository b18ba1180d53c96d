-- Runaway templates: loops and memory bombs must fail, not hang or crash.
return {
  name = "t_runaway",
  formats = {"q4"},
  params = {{"WHAT", {1, 2, 3, 4}}},
  check = function(p, s) return true end,
  meta = function(p, s) return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,
  source = [==[
//$ if WHAT == 1 then
//$   while true do end
//$ elseif WHAT == 2 then
//$   while true do pcall(function() while true do end end) end
//$ elseif WHAT == 3 then
//$   local s = "x"
//$   while true do s = s .. s end
//$ else
//$   local t = {}
//$   for i = 1, 1e12 do t[i] = {i} end
//$ end
]==],
}
