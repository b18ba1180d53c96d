/*
** q4gen_sandbox.h -- the Lua state templates run in (internal to generator/).
**
** A state whose allocator caps its memory and whose instruction-count hook
** stops runaway code, with only the base, string, table, math and utf8
** libraries opened (no io, os, package, debug, coroutine; dofile and
** loadfile removed; print goes to the debug log). render.lua builds the
** environments templates actually see on top of it.
*/
#ifndef Q4GEN_SANDBOX_H
#define Q4GEN_SANDBOX_H

#include <lua.h>
#include <stddef.h>

#define Q4SB_MEM_LIMIT ((size_t)256 << 20)  /* bytes per state */
#define Q4SB_STEP_LIMIT 50000000LL          /* Lua instructions per call */

typedef struct q4sb {
  lua_State *L;
  size_t mem_used, mem_limit;
  long long steps, step_limit;
} q4sb;

/* Create the state; 0 on success, -1 if out of memory. */
int q4sb_open(q4sb *sb);
void q4sb_close(q4sb *sb);

/* Push a table of the C helpers render.lua takes: print, reset, tripped,
** run_main
** (allocates: call it from protected code). */
void q4sb_push_helpers(q4sb *sb);

/* lua_pcall with a fresh instruction budget; returns lua_pcall's status. */
int q4sb_pcall(q4sb *sb, int nargs, int nresults);

#endif
