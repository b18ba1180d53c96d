/*
** q4gen_sandbox.c -- the Lua state templates run in: capped memory, an
** instruction budget, and only the harmless standard libraries.
*/
#include "q4gen_sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>

#include "q4_error.h"

#define HOOK_EVERY 1000 /* instructions between two hook calls */

/* Every allocation of the state goes through here: growth past mem_limit
** fails (Lua then raises "not enough memory"), shrinking never does. */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  q4sb *sb = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    sb->mem_used -= old;
    return NULL;
  }
  if (nsize > old && nsize - old > sb->mem_limit - sb->mem_used) return NULL;
  void *p = realloc(ptr, nsize);
  if (p) sb->mem_used = sb->mem_used - old + nsize;
  return p;
}

static q4sb *sb_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

static char capture_key; /* registry[&capture_key] = {fn, locals} while capturing */

/* Return hook of run_main: when the captured function returns, copy its
** live local variables into the locals table. */
static void capture_locals(lua_State *L, lua_Debug *ar) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &capture_key);
  lua_rawgeti(L, -1, 1);
  lua_getinfo(L, "f", ar);
  int mine = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (mine) {
    lua_rawgeti(L, -1, 2);
    const char *name;
    for (int i = 1; (name = lua_getlocal(L, ar, i)); i++) {
      if (name[0] == '(') lua_pop(L, 1);
      else lua_setfield(L, -2, name);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void sb_hook(lua_State *L, lua_Debug *ar) {
  q4sb *sb = sb_of(L);
  if (ar->event == LUA_HOOKRET) {
    capture_locals(L, ar);
    return;
  }
  sb->steps += HOOK_EVERY;
  if (sb->steps <= sb->step_limit) return;
  lua_getinfo(L, "Sl", ar);
  lua_pushfstring(L, "%s:%d: template ran too long (over %d million Lua instructions)",
                  ar->short_src, ar->currentline, (int)(sb->step_limit / 1000000));
  lua_error(L);
}

/* print(...) for templates: one line in the debug log. */
static int sb_print(lua_State *L) {
  luaL_Buffer b;
  int n = lua_gettop(L);
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  q4_log(Q4_LOG_DEBUG, "template: %s", lua_tostring(L, -1));
  return 0;
}

static int sb_reset(lua_State *L) {
  sb_of(L)->steps = 0;
  return 0;
}

static int sb_tripped(lua_State *L) {
  q4sb *sb = sb_of(L);
  lua_pushboolean(L, sb->steps > sb->step_limit);
  return 1;
}

/* run_main(fn) -> fn's first result, table of fn's locals when it returned.
** This is how a template's source sees the file's `local` names. */
static int sb_run_main(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_newtable(L);
  lua_rawseti(L, -2, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &capture_key);
  lua_sethook(L, sb_hook, LUA_MASKCOUNT | LUA_MASKRET, HOOK_EVERY);
  int rc = lua_pcall(L, 0, 1, 0);
  lua_sethook(L, sb_hook, LUA_MASKCOUNT, HOOK_EVERY);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &capture_key);
  lua_rawgeti(L, -1, 2);
  lua_remove(L, -2);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &capture_key);
  if (rc != LUA_OK) {
    lua_pop(L, 1);
    return lua_error(L);
  }
  return 2;
}

static int sb_setup(lua_State *L) {
  static const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base}, {LUA_STRLIBNAME, luaopen_string},
      {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
      {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->name; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  /* The base library reads files with these; nothing here needs them. */
  lua_pushnil(L);
  lua_setglobal(L, "dofile");
  lua_pushnil(L);
  lua_setglobal(L, "loadfile");
  lua_pushcfunction(L, sb_print);
  lua_setglobal(L, "print");
  return 0;
}

int q4sb_open(q4sb *sb) {
  sb->mem_used = 0;
  sb->mem_limit = Q4SB_MEM_LIMIT;
  sb->steps = 0;
  sb->step_limit = Q4SB_STEP_LIMIT;
  sb->L = lua_newstate(sb_alloc, sb);
  if (!sb->L) return -1;
  lua_pushcfunction(sb->L, sb_setup);
  if (lua_pcall(sb->L, 0, 0, 0) != LUA_OK) {
    q4sb_close(sb);
    return -1;
  }
  lua_sethook(sb->L, sb_hook, LUA_MASKCOUNT, HOOK_EVERY);
  return 0;
}

void q4sb_close(q4sb *sb) {
  if (sb->L) lua_close(sb->L);
  sb->L = NULL;
}

void q4sb_push_helpers(q4sb *sb) {
  static const luaL_Reg fns[] = {
      {"print", sb_print}, {"reset", sb_reset}, {"tripped", sb_tripped},
      {"run_main", sb_run_main}, {NULL, NULL}};
  luaL_newlib(sb->L, fns);
}

int q4sb_pcall(q4sb *sb, int nargs, int nresults) {
  sb->steps = 0;
  return lua_pcall(sb->L, nargs, nresults, 0);
}
