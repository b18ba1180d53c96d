/*
** q4gen.c -- kernel templates: loading, enumeration, rendering, defaults.
**
** The work happens in Lua: render.lua (embedded at build time) validates
** templates, walks the parameter space, compiles sources and renders them,
** inside the sandboxed state of q4gen_sandbox.c. This file moves files in and
** variant records out, hashes sources, and turns Lua errors into
** Q4_ERR_TEMPLATE messages that start with the template's file name.
*/
#include "q4gen.h"

#include <dirent.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "q4_embed.h"
#include "q4_error.h"
#include "q4gen_sandbox.h"

typedef struct tmpl_info {
  char name[Q4_NAME_MAX];
  unsigned formats;  /* bit (1 << q4_format) */
  double priority;
} tmpl_info;

struct q4gen {
  q4sb sb;
  int host;   /* registry reference to the table render.lua returns */
  int count;
  tmpl_info *t;
  int *order; /* template indices by (priority, name) */
  int cublas; /* s.cublas for the templates (q4gen_set_cublas) */
  int sms;    /* s.sms (q4gen_set_sms) */
};

/* One call H[fn](name [, str] [, shape] [, m]) into render.lua. It runs
** inside lua_pcall, arguments included, so that running out of the state's
** memory while pushing them is an error rather than a panic. */
typedef struct host_call {
  int host;
  const char *fn, *name;
  const char *str;  /* optional */
  size_t len;       /* of str; 0 means strlen */
  const q4_shape *s;
  int arch, m;      /* m: 0 = absent */
  int cublas;       /* s.cublas */
  int sms;          /* s.sms */
  int nres;
} host_call;

static int host_trampoline(lua_State *L) {
  host_call *c = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->host);
  lua_getfield(L, 1, c->fn);
  lua_remove(L, 1);
  lua_pushstring(L, c->name);
  if (c->str) lua_pushlstring(L, c->str, c->len ? c->len : strlen(c->str));
  if (c->s) {
    lua_createtable(L, 0, 10);
    lua_pushboolean(L, (c->s->flags & Q4_SHAPE_SYMMETRIC) != 0);
    lua_setfield(L, -2, "symmetric");
    lua_pushboolean(L, (c->s->flags & Q4_SHAPE_ACT_ORDER) != 0);
    lua_setfield(L, -2, "act_order");
    lua_pushstring(L, q4_format_name(c->s->format));
    lua_setfield(L, -2, "format");
    lua_pushinteger(L, c->s->n);
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, c->s->k);
    lua_setfield(L, -2, "k");
    lua_pushinteger(L, c->s->group_size);
    lua_setfield(L, -2, "group_size");
    lua_pushinteger(L, c->arch);
    lua_setfield(L, -2, "arch");
    lua_pushboolean(L, c->cublas);
    lua_setfield(L, -2, "cublas");
    lua_pushinteger(L, c->sms);
    lua_setfield(L, -2, "sms");
  }
  if (c->m) lua_pushinteger(L, c->m);
  lua_call(L, lua_gettop(L) - 1, c->nres);
  return c->nres;
}

/* The error on top of the stack as a Q4_ERR_TEMPLATE message that starts
** with the template's file name; clears the stack. */
static q4_status lua_failure(q4gen *g, int rc, const char *tmpl) {
  lua_State *L = g->sb.L;
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                    : "(error object is not a string)";
  char where[Q4_NAME_MAX + 8];
  snprintf(where, sizeof where, "%s.lua:", tmpl);
  q4_status st;
  if (rc == LUA_ERRMEM || strstr(msg, "not enough memory"))
    st = q4_err(Q4_ERR_TEMPLATE, "%s.lua: out of memory (a template may use %zu MB)", tmpl,
                g->sb.mem_limit >> 20);
  else if (!strncmp(msg, where, strlen(where)))
    st = q4_err(Q4_ERR_TEMPLATE, "%s", msg);
  else
    st = q4_err(Q4_ERR_TEMPLATE, "%s.lua: %s", tmpl, msg);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return st;
}

/* Append context to this thread's message, keeping "file.lua:line:" first. */
static q4_status add_context(q4_status st, const char *what, const char *detail) {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", q4_last_error());
  return q4_err(st, "%s (%s %s)", msg, what, detail);
}

/* Run c; on success its results are on the stack. */
static q4_status host(q4gen *g, host_call *c) {
  lua_State *L = g->sb.L;
  c->host = g->host;
  c->cublas = g->cublas;
  c->sms = g->sms;
  lua_settop(L, 0);
  lua_pushcfunction(L, host_trampoline);
  lua_pushlightuserdata(L, c);
  int rc = q4sb_pcall(&g->sb, 1, c->nres);
  return rc == LUA_OK ? Q4_OK : lua_failure(g, rc, c->name);
}

static int load_host(lua_State *L) {
  if (luaL_loadbufferx(L, q4_genlua[0].data, q4_genlua[0].size, "=render.lua", "t"))
    return lua_error(L);
  q4sb_push_helpers(lua_touserdata(L, 1));
  lua_call(L, 1, 1);
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
  return 1;
}

/* ------------------------------------------------------------------------- */
/* Template files */

static int is_lua_file(const char *name) {
  size_t n = strlen(name);
  return n > 4 && !strcmp(name + n - 4, ".lua") && name[0] != '.';
}

/* Hand file NAME.lua to render.lua; a template (not _NAME) is also listed
** in g->t, to be loaded once every library is there. */
static q4_status add_file(q4gen *g, const char *file, const char *text, size_t len) {
  char name[Q4_NAME_MAX];
  size_t n = strlen(file) - 4;
  if (n >= sizeof name) return q4_err(Q4_ERR_TEMPLATE, "%s: file name too long", file);
  memcpy(name, file, n);
  name[n] = '\0';
  host_call c = {.fn = "add_file", .name = name, .str = text, .len = len};
  q4_status st = host(g, &c);
  if (st || name[0] == '_') return st;
  tmpl_info *more = realloc(g->t, sizeof *g->t * (size_t)(g->count + 1));
  if (!more) return q4_err(Q4_ERR_NO_MEMORY, "loading %s", file);
  g->t = more;
  memset(&g->t[g->count], 0, sizeof *g->t);
  memcpy(g->t[g->count++].name, name, n + 1);
  return Q4_OK;
}

static q4_status read_file(const char *path, char **text, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return q4_err(Q4_ERR_IO, "cannot open template %s", path);
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1) break;
    char *bigger = realloc(buf, cap *= 2);
    if (!bigger) free(buf);
    buf = bigger;
  }
  int err = ferror(f);
  fclose(f);
  if (!buf) return q4_err(Q4_ERR_NO_MEMORY, "reading %s", path);
  if (err) {
    free(buf);
    return q4_err(Q4_ERR_IO, "cannot read template %s", path);
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return Q4_OK;
}

/* Hand every *.lua of dir to render.lua. */
static q4_status add_dir(q4gen *g, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return q4_err(Q4_ERR_IO, "cannot open template directory %s ($Q4TUNE_TEMPLATE_DIR)", dir);
  q4_status st = Q4_OK;
  for (struct dirent *e; st == Q4_OK && (e = readdir(d));) {
    if (!is_lua_file(e->d_name)) continue;
    char path[4096], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if ((st = read_file(path, &text, &len)) == Q4_OK) {
      st = add_file(g, e->d_name, text, len);
      free(text);
    }
  }
  closedir(d);
  return st;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const tmpl_info *)a)->name, ((const tmpl_info *)b)->name);
}

/* Validate template t (its file already added) and read formats, priority. */
static q4_status load_template(q4gen *g, tmpl_info *t) {
  host_call c = {.fn = "load_template", .name = t->name, .nres = 2};
  q4_status st = host(g, &c);
  if (st) return st;
  lua_State *L = g->sb.L;
  for (lua_Integer i = 1; lua_rawgeti(L, 1, i) == LUA_TSTRING; i++) {
    t->formats |= !strcmp(lua_tostring(L, -1), "q4s") ? 1u << Q4_FORMAT_Q4S : 1u << Q4_FORMAT_Q4;
    lua_pop(L, 1);
  }
  t->priority = lua_tonumber(L, 2);
  lua_settop(L, 0);
  return Q4_OK;
}

q4_status q4gen_open(q4gen **out) {
  q4_err_clear();
  if (!out) return q4_err(Q4_ERR_INVALID_ARG, "q4gen_open: out is NULL");
  *out = NULL;
  q4gen *g = calloc(1, sizeof *g);
  if (!g || q4sb_open(&g->sb)) {
    free(g);
    return q4_err(Q4_ERR_NO_MEMORY, "cannot create the template Lua state");
  }
  g->cublas = 1;
  g->sms = 132;
  lua_State *L = g->sb.L;
  lua_pushcfunction(L, load_host);
  lua_pushlightuserdata(L, &g->sb);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    q4_status st = q4_err(Q4_ERR_TEMPLATE, "%s", lua_tostring(L, -1));
    q4gen_close(g);
    return st;
  }
  g->host = (int)lua_tointeger(L, -1);
  lua_settop(L, 0);

  /* Every file first (templates import libraries), then the templates. */
  const char *dir = getenv("Q4TUNE_TEMPLATE_DIR");
  q4_status st = Q4_OK;
  if (dir && *dir) {
    st = add_dir(g, dir);
  } else {
    for (const q4_embedded_file *f = q4_templates; f->name && !st; f++)
      if (is_lua_file(f->name)) st = add_file(g, f->name, f->data, f->size);
  }
  if (!st && g->count == 0)
    st = q4_err(Q4_ERR_TEMPLATE, "no templates in %s", dir && *dir ? dir : "the library (templates/*.lua)");
  if (!st) qsort(g->t, (size_t)g->count, sizeof *g->t, cmp_name);
  for (int i = 0; i < g->count && !st; i++) st = load_template(g, &g->t[i]);
  if (!st && !(g->order = malloc(sizeof *g->order * (size_t)g->count)))
    st = q4_err(Q4_ERR_NO_MEMORY, "loading templates");
  if (st) {
    q4gen_close(g);
    return st;
  }
  /* by priority, ties by name: a stable insertion sort of the name order */
  for (int i = 0; i < g->count; i++) {
    int j = i;
    for (; j > 0 && g->t[g->order[j - 1]].priority > g->t[i].priority; j--)
      g->order[j] = g->order[j - 1];
    g->order[j] = i;
  }
  q4_log(Q4_LOG_DEBUG, "loaded %d templates from %s", g->count, dir && *dir ? dir : "the library");
  *out = g;
  return Q4_OK;
}

void q4gen_close(q4gen *g) {
  if (!g) return;
  q4sb_close(&g->sb);
  free(g->t);
  free(g->order);
  free(g);
}

int q4gen_count(const q4gen *g) { return g ? g->count : 0; }

void q4gen_set_cublas(q4gen *g, int available) {
  if (g) g->cublas = available != 0;
}

void q4gen_set_sms(q4gen *g, int sms) {
  if (g) g->sms = sms > 0 ? sms : 1;
}

const char *q4gen_name(const q4gen *g, int i) {
  return g && i >= 0 && i < g->count ? g->t[i].name : NULL;
}

int q4gen_supports(const q4gen *g, int i, q4_format f) {
  return g && i >= 0 && i < g->count && (f == Q4_FORMAT_Q4 || f == Q4_FORMAT_Q4S) &&
         (g->t[i].formats >> f & 1u);
}

/* ------------------------------------------------------------------------- */
/* Variants */

static int find_tmpl(const q4gen *g, const char *name) {
  for (int i = 0; i < g->count; i++)
    if (!strcmp(g->t[i].name, name)) return i;
  return -1;
}

static q4_status check_shape(const char *fn, const q4_shape *s, int arch) {
  if (s->format != Q4_FORMAT_Q4 && s->format != Q4_FORMAT_Q4S)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: unknown weight format %d", fn, (int)s->format);
  if (s->n <= 0 || s->k <= 0 || s->group_size <= 0 || arch <= 0)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: bad shape n=%d k=%d group_size=%d arch=%d", fn,
                  s->n, s->k, s->group_size, arch);
  return Q4_OK;
}

static int int_field(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  int v = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Launch fields from the checked meta table at stack index t. */
static void read_meta(lua_State *L, int t, q4_variant *v) {
  v->threads = int_field(L, t, "threads");
  v->smem = int_field(L, t, "smem");
  v->smem_row = int_field(L, t, "smem_row");
  v->tile_m = int_field(L, t, "tile_m");
  v->tile_n = int_field(L, t, "tile_n");
  v->split_k = int_field(L, t, "split_k");
  v->m_min = int_field(L, t, "m_min");
  v->m_max = int_field(L, t, "m_max");
  v->chunk_n = int_field(L, t, "chunk_n");
  v->split_cluster = int_field(L, t, "split_cluster");
}

q4_status q4gen_enumerate(q4gen *g, const char *tmpl, const q4_shape *s, int arch,
                          q4_variant **out, int *count) {
  q4_err_clear();
  if (out) *out = NULL;
  if (count) *count = 0;
  if (!g || !tmpl || !s || !out || !count)
    return q4_err(Q4_ERR_INVALID_ARG, "q4gen_enumerate: NULL argument");
  q4_status st = check_shape("q4gen_enumerate", s, arch);
  if (st) return st;
  int i = find_tmpl(g, tmpl);
  if (i < 0) return q4_err(Q4_ERR_INVALID_ARG, "q4gen_enumerate: no template '%s'", tmpl);
  if (!q4gen_supports(g, i, s->format)) return Q4_OK;

  host_call c = {.fn = "enumerate", .name = tmpl, .s = s, .arch = arch, .nres = 1};
  if ((st = host(g, &c))) return st;
  lua_State *L = g->sb.L;
  int n = (int)lua_rawlen(L, 1);
  q4_variant *list = n ? calloc((size_t)n, sizeof *list) : NULL;
  if (n && !list) {
    lua_settop(L, 0);
    return q4_err(Q4_ERR_NO_MEMORY, "enumerating %s", tmpl);
  }
  for (int j = 0; j < n; j++) {
    q4_variant *v = &list[j];
    lua_rawgeti(L, 1, j + 1);
    snprintf(v->tmpl, sizeof v->tmpl, "%s", tmpl);
    lua_getfield(L, -1, "params");
    snprintf(v->params, sizeof v->params, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    read_meta(L, -1, v);
    lua_pop(L, 1);
  }
  lua_settop(L, 0);
  *out = list;
  *count = n;
  return Q4_OK;
}

static void hash_hex(const char *src, size_t len, char out[Q4_HASH_MAX]) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(src, len));
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
}

/* Render template i with v->params into v (source replaced, not leaked). */
static q4_status render(q4gen *g, int i, const q4_shape *s, int arch, q4_variant *v) {
  if (!q4gen_supports(g, i, s->format))
    return q4_err(Q4_ERR_TEMPLATE, "%s.lua: does not take format %s", g->t[i].name,
                  q4_format_name(s->format));
  host_call c = {.fn = "render", .name = g->t[i].name, .str = v->params, .s = s,
                 .arch = arch, .nres = 2};
  q4_status st = host(g, &c);
  if (st) return add_context(st, "rendering", v->params);
  lua_State *L = g->sb.L;
  size_t len;
  const char *src = lua_tolstring(L, 1, &len);  /* a string: render.lua concat */
  char *copy = malloc(len + 1);
  if (!copy) {
    lua_settop(L, 0);
    return q4_err(Q4_ERR_NO_MEMORY, "rendering %s", g->t[i].name);
  }
  memcpy(copy, src, len + 1);
  read_meta(L, 2, v);
  lua_settop(L, 0);
  free(v->source);
  v->source = copy;
  hash_hex(copy, len, v->hash);
  return Q4_OK;
}

q4_status q4gen_render(q4gen *g, const q4_shape *s, int arch, q4_variant *v) {
  q4_err_clear();
  if (!g || !s || !v) return q4_err(Q4_ERR_INVALID_ARG, "q4gen_render: NULL argument");
  q4_status st = check_shape("q4gen_render", s, arch);
  if (st) return st;
  if (!memchr(v->tmpl, '\0', sizeof v->tmpl) || !memchr(v->params, '\0', sizeof v->params))
    return q4_err(Q4_ERR_INVALID_ARG, "q4gen_render: tmpl or params not terminated");
  int i = find_tmpl(g, v->tmpl);
  if (i < 0) return q4_err(Q4_ERR_INVALID_ARG, "q4gen_render: no template '%s'", v->tmpl);
  return render(g, i, s, arch, v);
}

q4_status q4gen_default(q4gen *g, const q4_shape *s, int arch, int m, q4_variant *v) {
  q4_err_clear();
  if (!g || !s || !v) return q4_err(Q4_ERR_INVALID_ARG, "q4gen_default: NULL argument");
  q4_status st = check_shape("q4gen_default", s, arch);
  if (st) return st;
  if (m < 1) return q4_err(Q4_ERR_INVALID_ARG, "q4gen_default: m = %d", m);
  memset(v, 0, sizeof *v);
  lua_State *L = g->sb.L;
  char declined[384] = "";  /* the first template's reason to decline, for the user */
  for (int o = 0; o < g->count; o++) {
    int i = g->order[o];
    if (!q4gen_supports(g, i, s->format)) continue;
    host_call c = {.fn = "default", .name = g->t[i].name, .s = s, .arch = arch, .m = m, .nres = 3};
    if ((st = host(g, &c))) {
      char mtext[32];
      snprintf(mtext, sizeof mtext, "m=%d", m);
      return add_context(st, "default for", mtext);
    }
    if (lua_type(L, 1) != LUA_TSTRING) {
      const char *why = lua_tostring(L, 2), *kind = lua_tostring(L, 3);
      if (why && kind && !strcmp(kind, "declined")) {
        if (!declined[0]) snprintf(declined, sizeof declined, " (%s: %s)", g->t[i].name, why);
      } else if (why) {
        q4_log(Q4_LOG_DEBUG, "%s: default for m=%d fails its check: %s", g->t[i].name, m, why);
      }
      lua_settop(L, 0);
      continue;
    }
    snprintf(v->tmpl, sizeof v->tmpl, "%s", g->t[i].name);
    snprintf(v->params, sizeof v->params, "%s", lua_tostring(L, 1));
    lua_settop(L, 0);
    if ((st = render(g, i, s, arch, v))) memset(v, 0, sizeof *v);
    return st;
  }
  return q4_err(Q4_ERR_UNSUPPORTED,
                "no template offers a default for format %s, n=%d, k=%d, group_size=%d, sm_%d, m=%d%s",
                q4_format_name(s->format), s->n, s->k, s->group_size, arch, m, declined);
}

void q4_variant_free(q4_variant *v) {
  if (!v) return;
  free(v->source);
  v->source = NULL;
}

void q4gen_free_list(q4_variant *list, int count) {
  if (!list) return;
  for (int i = 0; i < count; i++) free(list[i].source);
  free(list);
}
