-- render.lua -- the trusted side of the template generator.
--
-- Runs in the generator's Lua state outside the sandbox (it may use load and
-- setmetatable); templates never see it. q4gen.c calls the functions of the
-- table it returns; the build embeds this file into the library
-- (cmake/embed.cmake). docs/TEMPLATES.md describes
-- the template side.
--
-- The chunk is called with one table of C helpers:
--   print(...)   debug log       reset()   restart the instruction budget
--   tripped()    true once the budget ran out (pcall must not swallow that)
--   run_main(f)  f(), plus a table of f's local variables as it returned
local C = ...

local assert, error, ipairs, load, next, pairs, pcall, select, setmetatable,
      tonumber, tostring, type, rawequal, rawget, rawlen =
      assert, error, ipairs, load, next, pairs, pcall, select, setmetatable,
      tonumber, tostring, type, rawequal, rawget, rawlen
local concat, unpack, pack, sort = table.concat, table.unpack, table.pack, table.sort
local format, find, sub, match, gmatch, srep = string.format, string.find,
      string.sub, string.match, string.gmatch, string.rep
local mtype, tointeger, huge = math.type, math.tointeger, math.huge

local INT_MAX = 2147483647

local H = {}
local files = {}      -- file name without .lua -> text
local file_order = {} -- names, sorted
local loaded = {}     -- library name -> value (LOADING while it runs)
local LOADING = {}
local info_of = {}    -- template name -> info (see H.load_template)
local compiled = {}   -- source text -> render function

-- ---------------------------------------------------------------------------
-- The sandbox: what template code can name.

-- string.dump is reachable through every string's metatable: replace it in
-- the real string table too.
local function no_dump() error('string.dump is not available to templates (sandbox)', 2) end
string.dump = no_dump

local FORBIDDEN = { io = 1, os = 1, package = 1, require = 1, debug = 1,
  load = 1, loadfile = 1, dofile = 1, loadstring = 1, collectgarbage = 1,
  getmetatable = 1, setmetatable = 1, coroutine = 1, module = 1,
  setfenv = 1, getfenv = 1 }

local function strict_index(_, k)
  if FORBIDDEN[k] then
    error(format("'%s' is not available to templates (sandbox)", tostring(k)), 2)
  end
  error(format("undefined name '%s'", tostring(k)), 2)
end
local STRICT = { __index = strict_index }

-- pcall for templates: it must not swallow "ran too long" or "out of memory".
local function safe_pcall(f, ...)
  local r = pack(pcall(f, ...))
  if not r[1] and (C.tripped() or r[2] == 'not enough memory') then error(r[2], 0) end
  return unpack(r, 1, r.n)
end

local BASE = { assert = assert, error = error, ipairs = ipairs, next = next,
  pairs = pairs, pcall = safe_pcall, select = select, tonumber = tonumber,
  tostring = tostring, type = type, rawequal = rawequal, rawget = rawget,
  rawlen = rawlen, unpack = unpack, print = C.print }
local LIBS = { math = math, string = string, table = table, utf8 = utf8 }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local import  -- defined below

-- A fresh environment: the safe names (library tables copied, so a template
-- can't change them for another) plus import; reading any other undefined
-- name is an error.
local function new_env(meta)
  local e = copy(BASE)
  for k, v in pairs(LIBS) do e[k] = copy(v) end
  e.import = import
  return setmetatable(e, meta or STRICT)
end

-- Names a template can't use for a parameter or constant.
local RESERVED = { import = 1, render = 1, _ENV = 1, _G = 1 }
for k in pairs(BASE) do RESERVED[k] = 1 end
for k in pairs(LIBS) do RESERVED[k] = 1 end
for k in pairs(FORBIDDEN) do RESERVED[k] = 1 end
for w in gmatch('and break do else elseif end false for function goto if in ' ..
                'local nil not or repeat return then true until while', '%a+') do
  RESERVED[w] = 1
end

-- Run NAME.lua in a fresh environment: returns its value, that environment
-- and (with_locals) the chunk's local variables when it returned.
local function run_file(name, with_locals)
  local env = new_env()
  local fn, err = load(files[name], '=' .. name .. '.lua', 't', env)
  if not fn then error(err, 0) end
  if not with_locals then return fn(), env end
  local r, locals = C.run_main(fn)
  return r, env, locals
end

function import(name)
  if type(name) ~= 'string' then error('import: expected a library name', 2) end
  local v = loaded[name]
  if v == LOADING then error(format("import: '%s' imports itself (a cycle)", name), 2) end
  if v ~= nil then return v end
  if sub(name, 1, 1) ~= '_' then
    error(format("import: '%s' is not a library (library files are named _NAME.lua)", name), 2)
  end
  if not files[name] then error(format("import: no library '%s' (%s.lua)", name, name), 2) end
  loaded[name] = LOADING
  local ok, r = pcall(run_file, name)
  loaded[name] = nil
  if not ok then error(r, 0) end
  if r == nil then r = true end
  loaded[name] = r
  return r
end

-- ---------------------------------------------------------------------------
-- Compiling source text to a Lua function.
--
-- Each line of text becomes one line of Lua, so Lua's line numbers are the
-- template's. A line whose first non-blank characters are //$ is a Lua
-- statement; any other line is emitted, with each {{ expr }} replaced by
-- fmt(expr).

-- {{ }} values as C++ text.
local function fmt(v)
  local t = type(v)
  if t == 'string' then return v end
  if t == 'number' then
    if mtype(v) == 'integer' then return format('%d', v) end
    if v ~= v or v == huge or v == -huge then
      error(format('{{ }} gave %s, which is not a C++ number', tostring(v)), 2)
    end
    local i = tointeger(v)
    if i then return format('%d', i) end
    local s = tostring(v)
    if tonumber(s) == v then return s end
    return format('%.17g', v)
  end
  if t == 'boolean' then return v and 'true' or 'false' end
  error(format('{{ }} gave a %s value (want a number, string or boolean)', t), 2)
end

-- Where does this text sit in a loaded file? (chunk name, lines before it)
local function locate(text)
  for _, name in ipairs(file_order) do
    local pos = find(files[name], text, 1, true)
    if pos then
      local before, n = sub(files[name], 1, pos - 1), 0
      for _ in gmatch(before, '\n') do n = n + 1 end
      return name .. '.lua', n
    end
  end
  return 'render()', 0
end

local function compile(text)
  local f = compiled[text]
  if f then return f end
  local where, offset = locate(text)
  local code = { 'local _ENV, _q4o, _q4f, _q4nl = ...; ', srep('\n', offset) }
  local pos, len, lineno = 1, #text, offset
  while pos <= len do
    lineno = lineno + 1
    local e = find(text, '\n', pos, true)
    local line = sub(text, pos, (e or len + 1) - 1)
    pos = e and e + 1 or len + 1
    local stmt = match(line, '^%s*//%$(.*)$')
    if stmt then
      code[#code + 1] = stmt
    else
      local parts, i = {}, 1
      while true do
        local a, b = find(line, '{{', i, true)
        if not a then
          if i <= #line then parts[#parts + 1] = format('%q', sub(line, i)) end
          break
        end
        if a > i then parts[#parts + 1] = format('%q', sub(line, i, a - 1)) end
        local c, d = find(line, '}}', b + 1, true)
        if not c then
          error(format('%s:%d: {{ without }} (a hole must end on its line)', where, lineno), 0)
        end
        local expr = sub(line, b + 1, c - 1)
        if not find(expr, '%S') then error(format('%s:%d: empty {{ }}', where, lineno), 0) end
        parts[#parts + 1] = '_q4f((' .. expr .. '))'
        i = d + 1
      end
      if e then parts[#parts + 1] = '_q4nl' end
      if #parts > 0 then code[#code + 1] = '_q4o[#_q4o+1]=' .. concat(parts, '..') end
    end
    code[#code + 1] = '\n'
  end
  local fn, err = load(concat(code), '=' .. where, 't', {})
  if not fn then error(err, 0) end
  f = function(env)
    local out = {}
    fn(env, out, fmt, '\n')
    return concat(out)
  end
  compiled[text] = f
  return f
end

-- ---------------------------------------------------------------------------
-- Loading and validating templates.

local function bad(name, msg, ...)
  error(name .. '.lua: ' .. format(msg, ...), 0)
end

local function is_ident(k)
  return type(k) == 'string' and match(k, '^[%a_][%w_]*$') ~= nil
end

local TEMPLATE_KEYS = { name = 1, formats = 1, priority = 1, params = 1,
  check = 1, meta = 1, default = 1, constants = 1, source = 1, description = 1 }
local FORMATS = { q4 = 1, q4s = 1 }

function H.add_file(name, text)
  if files[name] == nil then file_order[#file_order + 1] = name end
  files[name] = text
  sort(file_order)
end

-- Run templates/NAME.lua, check what it returns and compile its source.
-- Returns the list of formats and the priority.
function H.load_template(name)
  local t, modenv, locals = run_file(name, true)
  if type(t) ~= 'table' then bad(name, 'must return a table (got %s)', type(t)) end
  for k in pairs(t) do
    if not TEMPLATE_KEYS[k] then bad(name, "unknown field '%s'", tostring(k)) end
  end
  if t.name ~= name then
    bad(name, "name is %s but the file is %s.lua", format('%q', tostring(t.name)), name)
  end
  if #name >= 64 then bad(name, 'name longer than 63 characters') end
  local formats = {}
  if type(t.formats) ~= 'table' or #t.formats == 0 then
    bad(name, 'formats must be a non-empty list such as {"q4"}')
  end
  for _, f in ipairs(t.formats) do
    if not FORMATS[f] then bad(name, "unknown format '%s' (want \"q4\" or \"q4s\")", tostring(f)) end
    formats[#formats + 1] = f
  end
  local priority = t.priority == nil and 100 or t.priority
  if type(priority) ~= 'number' then bad(name, 'priority must be a number') end
  for _, k in ipairs({ 'check', 'meta' }) do
    if type(t[k]) ~= 'function' then bad(name, '%s must be a function', k) end
  end
  for _, k in ipairs({ 'default', 'constants' }) do
    if t[k] ~= nil and type(t[k]) ~= 'function' then bad(name, '%s must be a function or nil', k) end
  end
  if type(t.source) ~= 'string' then bad(name, 'source must be a string') end

  local info = { t = t, name = name, modenv = modenv, locals = locals, params = {}, index = {}, allowed = {} }
  if type(t.params) ~= 'table' or #t.params == 0 then
    bad(name, 'params must be a non-empty list of {"NAME", {values...}}')
  end
  local longest = 0
  for i, pr in ipairs(t.params) do
    local pname, vals = type(pr) == 'table' and pr[1], type(pr) == 'table' and pr[2]
    if not is_ident(pname) or RESERVED[pname] or sub(pname, 1, 3) == '_q4' then
      bad(name, 'params[%d]: %s is not a usable parameter name', i, format('%q', tostring(pname)))
    end
    if info.index[pname] then bad(name, "parameter '%s' declared twice", pname) end
    if type(vals) ~= 'table' or #vals == 0 then
      bad(name, "parameter '%s' needs a non-empty list of integer values", pname)
    end
    local list, set, width = {}, {}, 0
    for j, v in ipairs(vals) do
      local iv = type(v) == 'number' and tointeger(v)
      if not iv or iv < -INT_MAX or iv > INT_MAX then
        bad(name, "parameter '%s': value %d (%s) is not an integer", pname, j, tostring(v))
      end
      if set[iv] then bad(name, "parameter '%s': value %d appears twice", pname, iv) end
      set[iv] = true
      list[#list + 1] = iv
      if #tostring(iv) > width then width = #tostring(iv) end
    end
    local when = pr.when
    if when ~= nil and type(when) ~= 'function' then
      bad(name, "parameter '%s': when must be a function of the shape", pname)
    end
    if pr.optional ~= nil and type(pr.optional) ~= 'boolean' then
      bad(name, "parameter '%s': optional must be a boolean", pname)
    end
    for k in pairs(pr) do
      if k ~= 1 and k ~= 2 and k ~= 'when' and k ~= 'optional' then
        bad(name, "parameter '%s': unknown field '%s'", pname, tostring(k))
      end
    end
    info.params[i] = { pname, list, when, pr.optional == true }
    info.index[pname] = i
    info.allowed[i] = set
    longest = longest + #pname + 2 + width
  end
  if longest > 255 then bad(name, 'parameter string could exceed 255 characters') end
  compile(t.source)
  info_of[name] = info
  return formats, priority
end

-- ---------------------------------------------------------------------------
-- Variants.

-- (an optional parameter at its first value is left out: the string is
-- then the one stored before the parameter was added)
local function params_string(info, vals)
  local parts = {}
  for i, pr in ipairs(info.params) do
    if not (pr[4] and vals[i] == pr[2][1]) then parts[#parts + 1] = pr[1] .. '=' .. vals[i] end
  end
  return concat(parts, ',')
end

local function by_name(info, vals)
  local p = {}
  for i, pr in ipairs(info.params) do p[pr[1]] = vals[i] end
  return p
end

-- "A=1,B=2" -> values in declared order
local function parse(info, str)
  local vals, name = {}, info.name
  for item in gmatch(str .. ',', '([^,]*),') do
    local k, v = match(item, '^%s*([%a_][%w_]*)%s*=%s*(%-?%d+)%s*$')
    if not k then bad(name, "params '%s': '%s' is not NAME=integer", str, item) end
    local i = info.index[k]
    if not i then bad(name, "params '%s': unknown parameter '%s'", str, k) end
    if vals[i] then bad(name, "params '%s': '%s' given twice", str, k) end
    v = tointeger(tonumber(v))
    if not v or not info.allowed[i][v] then
      local opts = {}
      for j, x in ipairs(info.params[i][2]) do opts[j] = tostring(x) end
      bad(name, "params '%s': %s=%s is not one of {%s}", str, k, tostring(v), concat(opts, ', '))
    end
    vals[i] = v
  end
  for i, pr in ipairs(info.params) do
    -- (an optional parameter is missing from strings stored before it was added)
    if vals[i] == nil and pr[4] then vals[i] = pr[2][1] end
    if vals[i] == nil then bad(name, "params '%s': missing parameter '%s'", str, pr[1]) end
  end
  return vals
end

local function shape_copy(s)
  return { format = s.format, n = s.n, k = s.k, group_size = s.group_size, arch = s.arch,
           symmetric = s.symmetric, act_order = s.act_order, cublas = s.cublas, sms = s.sms }
end

-- ok, reason from check(p, s)
local function check(info, vals, s)
  local ok, why = info.t.check(by_name(info, vals), shape_copy(s))
  if type(ok) ~= 'boolean' then
    bad(info.name, 'check(%s) must return true, or false and a reason (got %s)',
        params_string(info, vals), type(ok))
  end
  if not ok then return false, why == nil and 'no reason given' or tostring(why) end
  return true
end

local META = { threads = 1, smem = 1, smem_row = 1, tile_m = 1, tile_n = 1, split_k = 1, m_min = 1, m_max = 1,
               chunk_n = 1, split_cluster = 1, min_blocks = 1 }

-- meta(p, s), checked, every field an integer.
local function meta(info, vals, s)
  local ps = params_string(info, vals)
  local m = info.t.meta(by_name(info, vals), shape_copy(s))
  local function fail(msg, ...) bad(info.name, 'meta(%s): ' .. msg, ps, ...) end
  if type(m) ~= 'table' then fail('must return a table') end
  for k in pairs(m) do
    if not META[k] then fail("unknown field '%s'", tostring(k)) end
  end
  local r = { smem_row = 0, split_k = 1, m_min = 1, m_max = INT_MAX, chunk_n = 0, split_cluster = 0, min_blocks = 0 }
  for k in pairs(META) do
    local v = m[k]
    if v == nil then
      if r[k] == nil then fail("missing field '%s'", k) end
    else
      if type(v) ~= 'number' or v ~= v then fail('%s = %s is not a number', k, tostring(v)) end
      if k == 'm_max' and v >= INT_MAX then v = INT_MAX end
      local iv = tointeger(v)
      if not iv then fail('%s = %s is not an integer', k, tostring(v)) end
      if iv > INT_MAX or iv < -INT_MAX then fail('%s = %s is out of range', k, tostring(v)) end
      r[k] = iv
    end
  end
  if r.threads < 32 or r.threads > 1024 or r.threads % 32 ~= 0 then
    fail('threads = %d is not a multiple of 32 in 32..1024', r.threads)
  end
  if r.smem < 0 then fail('smem = %d is negative', r.smem) end
  if r.smem_row < 0 then fail('smem_row = %d is negative', r.smem_row) end
  if r.tile_m < 1 then fail('tile_m = %d is below 1', r.tile_m) end
  if r.tile_n < 1 then fail('tile_n = %d is below 1', r.tile_n) end
  if r.split_k < 1 then fail('split_k = %d is below 1', r.split_k) end
  if r.m_min < 1 then fail('m_min = %d is below 1', r.m_min) end
  if r.m_max < r.m_min then fail('m_max = %d is below m_min = %d', r.m_max, r.m_min) end
  if r.chunk_n < 0 then fail('chunk_n = %d is negative', r.chunk_n) end
  if r.min_blocks < 0 or r.min_blocks > 32 then fail('min_blocks = %d is not in 0..32', r.min_blocks) end
  if r.split_cluster ~= 0 and r.split_cluster ~= 1 then fail('split_cluster = %d is not 0 or 1', r.split_cluster) end
  -- (a portable cluster holds at most 8 blocks; clusters need sm_90)
  if r.split_cluster == 1 and (r.split_k < 2 or r.split_k > 8 or s.arch < 90) then
    fail('split_cluster = 1 needs split_k in 2..8 and sm_90 or newer (split_k = %d, sm_%d)', r.split_k, s.arch)
  end
  return r
end

-- The values of parameter i enumerated for shape s: all of them, or only
-- the first where the parameter's when(s) says it changes nothing.
local function values_for(info, i, s)
  local pr = info.params[i]
  if pr[3] == nil then return pr[2] end
  C.reset()
  local on = pr[3](shape_copy(s))
  if type(on) ~= 'boolean' then
    bad(info.name, "parameter '%s': when(s) must return a boolean (got %s)", pr[1], type(on))
  end
  return on and pr[2] or { pr[2][1] }
end

-- Every variant check() accepts, in declared order (last parameter fastest):
-- a list of meta tables, each with .params set. The instruction budget
-- restarts for every call into the template.
function H.enumerate(name, s)
  local info = info_of[name]
  local out, idx, n, lists = {}, {}, #info.params, {}
  for i = 1, n do
    idx[i] = 1
    lists[i] = values_for(info, i, s)
  end
  while true do
    local vals = {}
    for i = 1, n do vals[i] = lists[i][idx[i]] end
    C.reset()
    if check(info, vals, s) then
      C.reset()
      local m = meta(info, vals, s)
      m.params = params_string(info, vals)
      out[#out + 1] = m
    end
    local i = n
    while i >= 1 do
      idx[i] = idx[i] + 1
      if idx[i] <= #lists[i] then break end
      idx[i] = 1
      i = i - 1
    end
    if i == 0 then break end
  end
  return out
end

-- Set env[k] = v; a name that is already there must keep its value.
local function put(env, k, v, what)
  local old = rawget(env, k)
  if old ~= nil and old ~= v then
    error(format("%s: '%s' = %s, but it is already %s", what, k, tostring(v), tostring(old)), 0)
  end
  env[k] = v
end

-- The render environment: params, shape, meta, constants; then the
-- template file's globals and its top-level locals.
local function render_env(info, vals, s, m)
  local modenv, locals = info.modenv, info.locals
  local env = new_env({ __index = function(_, k)
    local v = rawget(modenv, k)
    if v == nil then v = locals[k] end
    if v ~= nil then return v end
    return strict_index(nil, k)
  end })
  for i, pr in ipairs(info.params) do env[pr[1]] = vals[i] end
  local what = info.name .. '.lua'
  put(env, 'N', s.n, what); put(env, 'K', s.k, what)
  put(env, 'GROUP_SIZE', s.group_size, what); put(env, 'FORMAT', s.format, what)
  put(env, 'ARCH', s.arch, what); put(env, 'TEMPLATE', info.name, what)
  put(env, 'SYMMETRIC', s.symmetric and 1 or 0, what); put(env, 'ACT_ORDER', s.act_order and 1 or 0, what)
  put(env, 'SPARSE', s.format == 'q4s' and 1 or 0, what)
  for _, k in ipairs({ 'threads', 'smem', 'smem_row', 'tile_m', 'tile_n', 'split_k', 'm_min', 'm_max', 'chunk_n',
                        'split_cluster', 'min_blocks' }) do
    put(env, string.upper(k), m[k], what .. ': meta')
  end
  if info.t.constants then
    C.reset()
    local c = info.t.constants(by_name(info, vals), shape_copy(s))
    if type(c) ~= 'table' then bad(info.name, 'constants() must return a table') end
    for k, v in pairs(c) do
      if not is_ident(k) or RESERVED[k] then
        bad(info.name, 'constants(): %s is not a usable name', format('%q', tostring(k)))
      end
      put(env, k, v, what .. ': constants()')
    end
  end
  env.render = function(text, extra)
    if type(text) ~= 'string' then error('render: expected source text (a string)', 2) end
    local e = env
    if extra ~= nil then
      if type(extra) ~= 'table' then error('render: extra names must be a table', 2) end
      e = setmetatable(copy(extra), { __index = env })
    end
    return compile(text)(e)
  end
  return env
end

-- Render the variant "A=1,B=2": returns source, meta.
function H.render(name, str, s)
  local info = info_of[name]
  local vals = parse(info, str)
  local ok, why = check(info, vals, s)
  if not ok then bad(name, 'check(%s) rejects it: %s', str, why) end
  local m = meta(info, vals, s)
  local env = render_env(info, vals, s, m)
  C.reset()
  return compile(info.t.source)(env), m
end

-- default(s, m) as a params string; or nil, a reason and what it is:
-- "check" (the template's answer fails its own check) or "declined" (the
-- template has no kernel for this case and says why, for the user); or nil
-- alone (no opinion).
function H.default(name, s, mrows)
  local info = info_of[name]
  if not info.t.default then return nil end
  local d, declined = info.t.default(shape_copy(s), mrows)
  if d == nil then
    if declined == nil then return nil end
    if type(declined) ~= 'string' then bad(name, 'default(): a reason to decline must be a string') end
    return nil, declined, 'declined'
  end
  if type(d) ~= 'table' then bad(name, 'default() must return a table of parameters or nil') end
  local parts = {}
  for k, v in pairs(d) do
    if not info.index[k] then bad(name, "default(): unknown parameter '%s'", tostring(k)) end
    parts[#parts + 1] = tostring(k) .. '=' .. tostring(tointeger(v) or v)
  end
  local vals = parse(info, concat(parts, ','))
  C.reset()
  local ok, why = check(info, vals, s)
  if not ok then return nil, why, 'check' end
  return params_string(info, vals)
end

return H
