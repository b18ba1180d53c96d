/*
** test_generator.c -- the template generator against the templates in
** tests/data/templates/ (through $Q4TUNE_TEMPLATE_DIR). The project's own
** templates and their rules are test_templates.c's.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "q4_error.h"
#include "q4gen.h"
#include "q4test.h"
#include "q4test_variant.h"

static char src_dir[PATH_MAX];  /* tests/ */

static void use_dir(const char *sub) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/data/templates/%s", src_dir, sub);
  setenv("Q4TUNE_TEMPLATE_DIR", path, 1);
}

static int has(const char *msg, const char *part) {
  return strstr(msg, part) != NULL;
}

/* Read a file of the source tree (relative to tests/); NULL if missing. */
static char *slurp(const char *rel) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", src_dir, rel);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* 1-based line of the first line of file rel containing needle. */
static int line_of(const char *rel, const char *needle) {
  char *text = slurp(rel);
  if (!text) return -1;
  char *at = strstr(text, needle);
  int line = 1;
  for (char *p = text; at && p < at; p++) line += *p == '\n';
  free(text);
  return at ? line : -1;
}

static const q4_shape SHAPE = {Q4_FORMAT_Q4, 4096, 4096, 128};

/* Render tmpl[params] for SHAPE at sm_80: status, message in q4_last_error. */
static q4_status render1(q4gen *g, const char *tmpl, const char *params, q4_variant *out) {
  q4_variant v = q4test_variant(tmpl, params);
  q4_status st = q4gen_render(g, &SHAPE, 80, &v);
  if (out) *out = v;
  else q4_variant_free(&v);
  return st;
}

static void test_open_and_list(q4gen *g) {
  CHECK(q4gen_count(g) == 12);
  CHECK(!strcmp(q4gen_name(g, 0), "t_enum_os"));
  CHECK(!strcmp(q4gen_name(g, 10), "t_text"));
  CHECK(!strcmp(q4gen_name(g, 11), "t_when"));
  CHECK(q4gen_name(g, 12) == NULL && q4gen_name(g, -1) == NULL);
  int text = -1, loopcheck = -1;
  for (int i = 0; i < q4gen_count(g); i++) {
    if (!strcmp(q4gen_name(g, i), "t_text")) text = i;
    if (!strcmp(q4gen_name(g, i), "t_loopcheck")) loopcheck = i;
  }
  CHECK(q4gen_supports(g, text, Q4_FORMAT_Q4) && q4gen_supports(g, text, Q4_FORMAT_Q4S));
  CHECK(!q4gen_supports(g, loopcheck, Q4_FORMAT_Q4) && q4gen_supports(g, loopcheck, Q4_FORMAT_Q4S));
  CHECK(!q4gen_supports(g, 99, Q4_FORMAT_Q4));
}

static const char *EXPECTED_TEXT =
    "// t_text A=2 B=10\n"
    "constexpr int half = 5;\n"
    "constexpr float frac = 0.5;\n"
    "constexpr bool flag = true, nflag = false;\n"
    "const char *name = \"t\";\n"
    "  x[0] = 0;\n"
    "  x[1] = 10;\n"
    "  small();\n"
    "  sq = 4, n = 4096, k = 4096, g = 128, q4, sm_80;\n"
    "  threads = 64, smem=40, 2x10, split 1, m 1..1000000000;\n"
    "lib: 2+10\n"
    "x=7\n"
    "4 hi\n"
    "end";

static void test_render_text(q4gen *g) {
  q4_variant v;
  CHECK_OK(render1(g, "t_text", "A=2,B=10", &v));
  CHECK_MSG(v.source && !strcmp(v.source, EXPECTED_TEXT), "got:\n%s", v.source ? v.source : "(null)");
  CHECK(v.threads == 64 && v.smem == 40 && v.tile_m == 2 && v.tile_n == 10);
  CHECK(v.split_k == 1 && v.m_min == 1 && v.m_max == 1000000000);
  q4_variant_free(&v);
  CHECK(v.source == NULL);

  /* the other branch, a longer loop, and "flag" false */
  CHECK_OK(render1(g, "t_text", "A=3,B=10", &v));
  CHECK(v.source && has(v.source, "  x[2] = 20;\n  small();\n") && has(v.source, "flag = false, nflag = true"));
  q4_variant_free(&v);
  CHECK_OK(render1(g, "t_text", "A=1,B=20", &v));
  CHECK(v.source && has(v.source, "  x[0] = 0;\n  big();\n") && !has(v.source, "x[1]"));
  CHECK(v.source && has(v.source, "half = 10;"));
  q4_variant_free(&v);
}

static void test_enumerate(q4gen *g) {
  q4_variant *list;
  int n;
  CHECK_OK(q4gen_enumerate(g, "t_text", &SHAPE, 80, &list, &n));
  static const char *want[] = {"A=1,B=10", "A=1,B=20", "A=2,B=10", "A=2,B=20", "A=3,B=10"};
  CHECK_MSG(n == 5, "n = %d", n);
  for (int i = 0; i < n && i < 5; i++) {
    CHECK_MSG(!strcmp(list[i].params, want[i]), "%d: %s", i, list[i].params);
    CHECK(!strcmp(list[i].tmpl, "t_text") && list[i].source == NULL && list[i].hash[0] == '\0');
  }
  if (n == 5) CHECK(list[4].threads == 96 && list[4].smem == 40 && list[4].tile_n == 10);
  /* round trip: every enumerated variant renders with the same launch fields */
  for (int i = 0; i < n; i++) {
    q4_variant v = list[i];
    v.source = NULL;
    CHECK_OK(q4gen_render(g, &SHAPE, 80, &v));
    CHECK(v.threads == list[i].threads && v.smem == list[i].smem && v.tile_m == list[i].tile_m &&
          v.tile_n == list[i].tile_n && v.m_max == list[i].m_max);
    CHECK(v.source && strlen(v.hash) == 32);
    list[i].source = v.source;  /* freed by q4gen_free_list */
  }
  q4gen_free_list(list, n);

  /* a format the template doesn't take: nothing, and no error */
  q4_shape s4s = SHAPE;
  s4s.format = Q4_FORMAT_Q4S;
  CHECK_OK(q4gen_enumerate(g, "t_meta", &s4s, 80, &list, &n));
  CHECK(n == 0 && list == NULL);
  CHECK(q4gen_enumerate(g, "nosuch", &SHAPE, 80, &list, &n) == Q4_ERR_INVALID_ARG);
  CHECK(has(q4_last_error(), "nosuch"));
  q4_shape bad = SHAPE;
  bad.k = 0;
  CHECK(q4gen_enumerate(g, "t_text", &bad, 80, &list, &n) == Q4_ERR_INVALID_ARG);
}

/* A parameter with `when` takes all its values where when(s) is true and
** only its first elsewhere; when(s) must answer a boolean. */
static void test_enumerate_when(q4gen *g) {
  q4_variant *list;
  int n;
  CHECK_OK(q4gen_enumerate(g, "t_when", &SHAPE, 80, &list, &n));  /* group 128: B varies */
  static const char *grouped[] = {"A=1,B=0,C=3", "A=1,B=5,C=3", "A=1,B=7,C=3",
                                  "A=2,B=0,C=3", "A=2,B=5,C=3", "A=2,B=7,C=3"};
  CHECK_MSG(n == 6, "n = %d", n);
  for (int i = 0; i < n && i < 6; i++) CHECK_MSG(!strcmp(list[i].params, grouped[i]), "%d: %s", i, list[i].params);
  q4gen_free_list(list, n);
  q4_shape pc = SHAPE;
  pc.group_size = pc.k;
  CHECK_OK(q4gen_enumerate(g, "t_when", &pc, 80, &list, &n));  /* per-channel: B and C fixed */
  CHECK_MSG(n == 2 && !strcmp(list[0].params, "A=1,B=0,C=3") && !strcmp(list[1].params, "A=2,B=0,C=3"),
            "n = %d", n);
  q4gen_free_list(list, n);
  /* every value still renders where when(s) is false */
  q4_variant v = {0};
  snprintf(v.tmpl, sizeof v.tmpl, "t_when");
  snprintf(v.params, sizeof v.params, "A=2,B=7,C=4");
  CHECK_OK(q4gen_render(g, &pc, 80, &v));
  CHECK(v.source && !strcmp(v.source, "2 7 4"));
  q4_variant_free(&v);
  q4_shape k1024 = SHAPE;
  k1024.k = 1024;
  CHECK(q4gen_enumerate(g, "t_when", &k1024, 80, &list, &n) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "parameter 'C': when(s) must return a boolean (got number)"), "%s",
            q4_last_error());
}

/* A parameter marked optional may be left out of a params string (one
** stored before it was added): it then takes its first value. Others may
** not. */
static void test_optional_param(q4gen *g) {
  q4_variant *list;
  int n;
  CHECK_OK(q4gen_enumerate(g, "t_optional", &SHAPE, 80, &list, &n));
  /* (at its first value it is left out of the string) */
  CHECK_MSG(n == 4 && !strcmp(list[0].params, "A=1") && !strcmp(list[1].params, "A=1,NEW=5") &&
                !strcmp(list[2].params, "A=2") && !strcmp(list[3].params, "A=2,NEW=5"),
            "n = %d", n);
  q4gen_free_list(list, n);
  q4_variant old, now, other;
  CHECK_OK(render1(g, "t_optional", "A=2", &old));
  CHECK_OK(render1(g, "t_optional", "A=2,NEW=0", &now));
  CHECK_OK(render1(g, "t_optional", "A=2,NEW=5", &other));
  CHECK(old.source && now.source && !strcmp(old.source, "2") && !strcmp(old.hash, now.hash));
  CHECK(other.source && !strcmp(other.source, "2 new"));
  q4_variant_free(&old);
  q4_variant_free(&now);
  q4_variant_free(&other);
  CHECK(render1(g, "t_optional", "NEW=5", NULL) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "missing parameter 'A'"), "%s", q4_last_error());
}

static void test_render_params(q4gen *g) {
  CHECK(render1(g, "t_text", "A=2", NULL) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "missing parameter 'B'"), "%s", q4_last_error());
  CHECK(render1(g, "t_text", "A=2,B=10,C=1", NULL) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "unknown parameter 'C'"), "%s", q4_last_error());
  CHECK(render1(g, "t_text", "A=4,B=10", NULL) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "A=4 is not one of {1, 2, 3}"), "%s", q4_last_error());
  CHECK(render1(g, "t_text", "A=2,A=2,B=10", NULL) == Q4_ERR_TEMPLATE);
  CHECK(has(q4_last_error(), "given twice"));
  CHECK(render1(g, "t_text", "A:2,B=10", NULL) == Q4_ERR_TEMPLATE);
  CHECK(has(q4_last_error(), "not NAME=integer"));
  CHECK(render1(g, "t_text", "", NULL) == Q4_ERR_TEMPLATE);
  CHECK(render1(g, "t_text", "A=3,B=20", NULL) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "t_text.lua: check(A=3,B=20) rejects it: A=3 with B=20"), "%s",
            q4_last_error());
  CHECK(render1(g, "nosuch", "A=1", NULL) == Q4_ERR_INVALID_ARG);
  q4_shape s4s = SHAPE;
  s4s.format = Q4_FORMAT_Q4S;
  q4_variant v = q4test_variant("t_meta", "CASE=12");
  CHECK(q4gen_render(g, &s4s, 80, &v) == Q4_ERR_TEMPLATE);
  CHECK(has(q4_last_error(), "does not take format q4s"));
  /* a failed render leaves the variant alone; a second render replaces the source */
  CHECK(v.source == NULL);
  CHECK_OK(q4gen_render(g, &SHAPE, 80, &v));
  CHECK_OK(q4gen_render(g, &SHAPE, 80, &v));
  q4_variant_free(&v);
}

static void test_meta(q4gen *g) {
  static const char *msgs[] = {
      "threads = 100 is not a multiple of 32 in 32..1024",
      "threads = 2048 is not a multiple of 32 in 32..1024",
      "smem = -1 is negative", "tile_m = 0 is below 1", "split_k = 0 is below 1",
      "m_min = 0 is below 1", "m_max = 5 is below m_min = 10", "threads = false is not a number",
      "unknown field 'thread'", "smem = 1.5 is not an integer", "missing field 'threads'",
      NULL, NULL, "smem_row = -2 is negative", NULL, "split_cluster = 2 is not 0 or 1",
      "split_cluster = 1 needs split_k in 2..8 and sm_90 or newer (split_k = 4, sm_80)",
      "split_cluster = 1 needs split_k in 2..8 and sm_90 or newer (split_k = 16, sm_80)",
      "min_blocks = 33 is not in 0..32", "min_blocks = -1 is not in 0..32", NULL};
  for (int c = 1; c <= 21; c++) {
    if (!msgs[c - 1]) continue;  /* 12, 13, 15, 21: valid */
    char params[32];
    snprintf(params, sizeof params, "CASE=%d", c);
    CHECK(render1(g, "t_meta", params, NULL) == Q4_ERR_TEMPLATE);
    CHECK_MSG(has(q4_last_error(), msgs[c - 1]) && has(q4_last_error(), "t_meta.lua: meta(CASE="),
              "case %d: %s", c, q4_last_error());
  }
  q4_variant v;
  CHECK_OK(render1(g, "t_meta", "CASE=12", &v));
  CHECK(v.m_max == 1000000000 && v.source && !strcmp(v.source, "64 1 1000000000 0"));
  q4_variant_free(&v);
  CHECK_OK(render1(g, "t_meta", "CASE=13", &v));
  CHECK(v.m_max == INT_MAX && v.split_k == 4 && v.source && !strcmp(v.source, "64 4 2147483647 0"));
  q4_variant_free(&v);
  /* min_blocks, 0 where not given, reaches the source */
  CHECK_OK(render1(g, "t_meta", "CASE=21", &v));
  CHECK(v.source && !strcmp(v.source, "64 1 2147483647 2"));
  q4_variant_free(&v);
  /* shared memory that grows with the rows of x a block holds: min(tile_m, M) of them */
  CHECK_OK(render1(g, "t_meta", "CASE=15", &v));
  CHECK(v.smem == 100 && v.smem_row == 10 && v.tile_m == 16 && v.m_max == 8);
  CHECK(q4_variant_smem(&v, 1) == 110 && q4_variant_smem(&v, v.m_max) == 180 && q4_variant_smem(&v, 100) == 260);
  q4_variant_free(&v);
  /* a split cluster: sm_90 and 2..8 blocks */
  q4_variant c = q4test_variant("t_meta", "CASE=17");
  CHECK_OK(q4gen_render(g, &SHAPE, 90, &c));
  CHECK(c.split_k == 4 && c.split_cluster == 1);
  q4_variant_free(&c);
  c = q4test_variant("t_meta", "CASE=18");
  CHECK(q4gen_render(g, &SHAPE, 90, &c) == Q4_ERR_TEMPLATE && has(q4_last_error(), "(split_k = 16, sm_90)"));
  q4_variant_free(&c);
  /* enumerate stops at the first bad meta */
  q4_variant *list;
  int n;
  CHECK(q4gen_enumerate(g, "t_meta", &SHAPE, 80, &list, &n) == Q4_ERR_TEMPLATE);
  CHECK(n == 0 && list == NULL && has(q4_last_error(), "meta(CASE=1)"));
}

static void test_sandbox(q4gen *g) {
  static const char *names[] = {"'io'", "'os'", "'require'", "'load'", "string.dump",
                                "string.dump", "'nosuch_name'"};
  for (int w = 1; w <= 7; w++) {
    char params[32];
    snprintf(params, sizeof params, "WHAT=%d", w);
    CHECK(render1(g, "t_sandbox", params, NULL) == Q4_ERR_TEMPLATE);
    CHECK_MSG(has(q4_last_error(), names[w - 1]) && has(q4_last_error(), "t_sandbox.lua:"),
              "WHAT=%d: %s", w, q4_last_error());
  }
  /* the message names the line of the template file */
  char want[64];
  snprintf(want, sizeof want, "t_sandbox.lua:%d: 'io' is not available",
           line_of("data/templates/basic/t_sandbox.lua", "io.open"));
  render1(g, "t_sandbox", "WHAT=1", NULL);
  CHECK_MSG(has(q4_last_error(), want), "%s", q4_last_error());
  snprintf(want, sizeof want, "t_sandbox.lua:%d: undefined name 'nosuch_name'",
           line_of("data/templates/basic/t_sandbox.lua", "nosuch_name"));
  render1(g, "t_sandbox", "WHAT=7", NULL);
  CHECK_MSG(has(q4_last_error(), want), "%s", q4_last_error());

  q4_variant *list;
  int n;
  CHECK(q4gen_enumerate(g, "t_enum_os", &SHAPE, 80, &list, &n) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "t_enum_os.lua:6: 'os' is not available"), "%s", q4_last_error());
}

static void test_runaway(q4gen *g) {
  CHECK(render1(g, "t_runaway", "WHAT=1", NULL) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "t_runaway.lua:") && has(q4_last_error(), "ran too long"), "%s",
            q4_last_error());
  CHECK(render1(g, "t_runaway", "WHAT=2", NULL) == Q4_ERR_TEMPLATE);  /* pcall can't hide it */
  CHECK_MSG(has(q4_last_error(), "ran too long"), "%s", q4_last_error());
  CHECK(render1(g, "t_runaway", "WHAT=3", NULL) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "t_runaway.lua: out of memory"), "%s", q4_last_error());
  CHECK(render1(g, "t_runaway", "WHAT=4", NULL) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "out of memory") || has(q4_last_error(), "ran too long"), "%s",
            q4_last_error());
  q4_shape s4s = SHAPE;
  s4s.format = Q4_FORMAT_Q4S;
  q4_variant *list;
  int n;
  CHECK(q4gen_enumerate(g, "t_loopcheck", &s4s, 80, &list, &n) == Q4_ERR_TEMPLATE);
  CHECK_MSG(has(q4_last_error(), "t_loopcheck.lua:5: template ran too long"), "%s", q4_last_error());
  /* the state is still fine afterwards */
  CHECK_OK(render1(g, "t_text", "A=2,B=10", NULL));
}

static void test_hash(q4gen *g) {
  q4_variant a, b, c;
  CHECK_OK(render1(g, "t_text", "A=2,B=10", &a));
  CHECK_OK(render1(g, "t_text", "A=2,B=10", &b));
  CHECK_OK(render1(g, "t_text", "A=1,B=10", &c));
  CHECK(strlen(a.hash) == 32 && strspn(a.hash, "0123456789abcdef") == 32);
  CHECK(!strcmp(a.hash, b.hash) && strcmp(a.hash, c.hash));
  if (a.source) {
    XXH128_canonical_t h;
    XXH128_canonicalFromHash(&h, XXH3_128bits(a.source, strlen(a.source)));
    char hex[33];
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", h.digest[i]);
    CHECK(!strcmp(hex, a.hash));
  }
  q4_variant_free(&a);
  q4_variant_free(&b);
  q4_variant_free(&c);
}

/* The same template file with one changed character: a different hash. */
static void test_hash_source_change(void) {
  char dir[] = "/tmp/q4gen_test_XXXXXX", path[64];
  if (!mkdtemp(dir)) {
    CHECK(0);
    return;
  }
  snprintf(path, sizeof path, "%s/t_one.lua", dir);
  char hash[2][Q4_HASH_MAX];
  for (int round = 0; round < 2; round++) {
    FILE *f = fopen(path, "w");
    fprintf(f, "return { name = 't_one', formats = {'q4'}, params = {{'X', {1}}},\n"
               "  check = function() return true end,\n"
               "  meta = function() return {threads = 32, smem = 0, tile_m = 1, tile_n = 1} end,\n"
               "  source = 'int x = {{X}} + %d;' }\n", round);
    fclose(f);
    setenv("Q4TUNE_TEMPLATE_DIR", dir, 1);
    q4gen *g = NULL;
    q4_variant v = q4test_variant("t_one", "X=1");
    CHECK_OK(q4gen_open(&g));
    CHECK_OK(q4gen_render(g, &SHAPE, 80, &v));
    snprintf(hash[round], sizeof hash[round], "%s", v.hash);
    q4_variant_free(&v);
    q4gen_close(g);
  }
  CHECK(strlen(hash[0]) == 32 && strcmp(hash[0], hash[1]));
  unlink(path);
  rmdir(dir);
}

static void test_default(q4gen *g) {
  q4_variant v;
  CHECK_OK(q4gen_default(g, &SHAPE, 80, 1, &v));
  CHECK_MSG(!strcmp(v.tmpl, "t_prio_c") && !strcmp(v.params, "X=1"), "%s %s", v.tmpl, v.params);
  CHECK(v.source && !strcmp(v.source, "c 1") && strlen(v.hash) == 32 && v.threads == 32);
  q4_variant_free(&v);
  CHECK_OK(q4gen_default(g, &SHAPE, 80, 32, &v));  /* t_prio_b wins the tie by name */
  CHECK_MSG(!strcmp(v.tmpl, "t_prio_b") && v.source && !strcmp(v.source, "b 2"), "%s", v.tmpl);
  q4_variant_free(&v);
  CHECK_OK(q4gen_default(g, &SHAPE, 80, 7, &v));  /* t_prio_a's answer fails its check */
  CHECK_MSG(!strcmp(v.tmpl, "t_prio_c"), "%s", v.tmpl);
  q4_variant_free(&v);
  q4_shape s4s = SHAPE;
  s4s.format = Q4_FORMAT_Q4S;
  CHECK_OK(q4gen_default(g, &s4s, 80, 100, &v));
  CHECK(!strcmp(v.tmpl, "t_prio_d") && !strcmp(v.params, "X=1") && v.source && !strcmp(v.source, "d 1"));
  q4_variant_free(&v);
  /* a template that declines says why at the end of the message */
  CHECK_ERR(q4gen_default(g, &s4s, 80, 101, &v), Q4_ERR_UNSUPPORTED,
            "no template offers a default for format q4s, n=4096, k=4096, group_size=128, sm_80, m=101 "
            "(t_prio_d: over 100 rows do not fit)");
  CHECK_ERR(q4gen_default(g, &s4s, 80, 300, &v), Q4_ERR_TEMPLATE, "a reason to decline must be a string");
  CHECK_ERR(q4gen_default(g, &s4s, 80, 400, &v), Q4_ERR_UNSUPPORTED, "no template offers a default");
  CHECK(!has(q4_last_error(), "("));
  CHECK(q4gen_default(g, &SHAPE, 80, 0, &v) == Q4_ERR_INVALID_ARG);
}

static void test_null_args(q4gen *g) {
  q4_variant v = q4test_variant("t_text", "A=1,B=10"), *list = NULL;
  int n = 0;
  CHECK(q4gen_open(NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_enumerate(NULL, "t_text", &SHAPE, 80, &list, &n) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_enumerate(g, NULL, &SHAPE, 80, &list, &n) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_enumerate(g, "t_text", NULL, 80, &list, &n) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_enumerate(g, "t_text", &SHAPE, 80, NULL, &n) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_enumerate(g, "t_text", &SHAPE, 80, &list, NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_render(NULL, &SHAPE, 80, &v) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_render(g, NULL, 80, &v) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_render(g, &SHAPE, 80, NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_default(NULL, &SHAPE, 80, 1, &v) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_default(g, NULL, 80, 1, &v) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_default(g, &SHAPE, 80, 1, NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4gen_count(NULL) == 0 && q4gen_name(NULL, 0) == NULL && !q4gen_supports(NULL, 0, Q4_FORMAT_Q4));
  q4gen_close(NULL);
  q4_variant_free(NULL);
  q4gen_free_list(NULL, 0);
}

/* Directories whose templates must not load: the message names file and line. */
static void test_load_errors(void) {
  static const struct { const char *dir, *msg; } cases[] = {
      {"bad_syntax", "t_bad.lua:3:"},
      {"bad_hole", NULL},  /* line computed below */
      {"bad_name", "t_name.lua: name is \"t_other\" but the file is t_name.lua"},
      {"bad_params", "t_name"},
      {"bad_nocheck", "t_nocheck.lua: check must be a function"},
      {"bad_field", "t_field.lua: unknown field 'defualt'"},
      {"bad_when", "t_when.lua: parameter 'X': when must be a function of the shape"},
      {"bad_optional", "t_optional.lua: parameter 'X': optional must be a boolean"},
      {"only_libs", "no templates in"},
      {"no_such_dir", "cannot open template directory"},
  };
  char hole[64];
  snprintf(hole, sizeof hole, "t_hole.lua:%d:", line_of("data/templates/bad_hole/t_hole.lua", "then then"));
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    use_dir(cases[i].dir);
    q4gen *g = (q4gen *)1;
    q4_status st = q4gen_open(&g);
    const char *want = !strcmp(cases[i].dir, "bad_hole") ? hole
                       : !strcmp(cases[i].dir, "bad_params") ? "t_params.lua: parameter 'X': value 2 (2.5) is not an integer"
                       : cases[i].msg;
    CHECK_MSG(st == (!strcmp(cases[i].dir, "no_such_dir") ? Q4_ERR_IO : Q4_ERR_TEMPLATE) && g == NULL,
              "%s: %s", cases[i].dir, q4_status_name(st));
    CHECK_MSG(has(q4_last_error(), want), "%s: %s", cases[i].dir, q4_last_error());
  }
}

int main(void) {
  snprintf(src_dir, sizeof src_dir, "%s", __FILE__);
  char *slash = strrchr(src_dir, '/');
  if (slash) *slash = '\0';
  else snprintf(src_dir, sizeof src_dir, ".");

  use_dir("basic");
  q4gen *g = NULL;
  CHECK_OK(q4gen_open(&g));
  if (g) {
    test_open_and_list(g);
    test_render_text(g);
    test_enumerate(g);
    test_enumerate_when(g);
    test_optional_param(g);
    test_render_params(g);
    test_meta(g);
    test_sandbox(g);
    test_runaway(g);
    test_hash(g);
    test_default(g);
    test_null_args(g);
    q4gen_close(g);
  }
  test_hash_source_change();
  test_load_errors();
  return q4test_done("test_generator");
}
