/*
** test_templates.c -- the project's own templates (templates/, embedded at
** build time): every variant renders, and the rules their parameter spaces
** and untuned defaults keep, as the measurements in docs/BENCHMARKS.md
** chose them. Nothing here compiles a kernel (test_kernels_compile and
** test_defaults_compile do).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_embed.h"
#include "q4_error.h"
#include "q4gen.h"
#include "q4test.h"
#include "q4test_variant.h"

static const q4_shape SHAPE = {Q4_FORMAT_Q4, 4096, 4096, 128};

/* A generator over the project's own templates (embedded at build time),
** or NULL when the build embedded none or opening failed (a failed check). */
static q4gen *open_real_templates(void) {
  if (q4_templates_count == 0) return NULL;
  unsetenv("Q4TUNE_TEMPLATE_DIR");
  q4gen *g = NULL;
  CHECK_OK(q4gen_open(&g));
  return g;
}

/* Every variant of every real template renders, when there are any. */
static void test_real_templates(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  for (int i = 0; i < q4gen_count(g); i++) {
    const char *name = q4gen_name(g, i);
    q4_variant *list = NULL;
    int n = 0, ok = 0;
    CHECK_OK(q4gen_enumerate(g, name, &SHAPE, 80, &list, &n));
    for (int j = 0; j < n; j++) {
      q4_status st = q4gen_render(g, &SHAPE, 80, &list[j]);
      CHECK_MSG(st == Q4_OK, "%s[%s]: %s", name, list[j].params, q4_last_error());
      ok += st == Q4_OK && list[j].source && list[j].source[0] && strlen(list[j].hash) == 32;
    }
    CHECK_MSG(ok == n, "%s: %d of %d rendered", name, ok, n);
    printf("  %s: %d variants rendered\n", name, n);
    q4gen_free_list(list, n);
  }
  q4_variant v;
  for (int m = 1; m <= 4096; m *= 4)
    if (q4gen_default(g, &SHAPE, 80, m, &v) == Q4_OK) {
      CHECK(v.source != NULL);
      q4_variant_free(&v);
    }
  q4gen_close(g);
}

static int count_of(const char *text, const char *needle) {
  int n = 0;
  for (const char *at = strstr(text, needle); at; at = strstr(at + 1, needle)) n++;
  return n;
}

/* Early launch: on sm_90 every single-pass kernel waits for the kernel
** before it once (griddepcontrol.wait, rendered once, in the prelude's
** q4_wait_for_prior); below sm_90 no griddepcontrol is emitted. The two-pass
** q4_dqgemm is never launched early. Where the wait sits against the
** kernel's first read of x is tested on the GPU (check --after-write
** --early-launch). */
static void test_early_launch(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  const q4_shape shapes[] = {{Q4_FORMAT_Q4, 4096, 4096, 4096}, {Q4_FORMAT_Q4S, 4096, 4096, 4096}};
  for (int i = 0; i < q4gen_count(g); i++) {
    const char *name = q4gen_name(g, i);
    for (int f = 0; f < 2; f++) {
      q4_variant *list = NULL;
      int n = 0;
      CHECK_OK(q4gen_enumerate(g, name, &shapes[f], 90, &list, &n));
      /* a template for sm_90 only (q4_wgmma) has no sm_80 rendering to test */
      q4_variant *list80 = NULL;
      int n80 = 0;
      CHECK_OK(q4gen_enumerate(g, name, &shapes[f], 80, &list80, &n80));
      q4gen_free_list(list80, n80);
      for (int j = 0; j < n; j += n / 7 + 1) {
        q4_variant v = list[j];
        v.source = NULL;
        CHECK_OK(q4gen_render(g, &shapes[f], 90, &v));
        const int two_pass = v.chunk_n > 0;
        if (v.source) {
          CHECK_MSG(count_of(v.source, "q4_wait_for_prior();") == (two_pass ? 0 : 1) &&
                        !strstr(v.source, "griddepcontrol.launch_dependents;") &&
                        count_of(v.source, "griddepcontrol.wait;") == 1,
                    "%s[%s] sm_90: the early-launch calls", name, v.params);
          free(v.source);
        }
        v.source = NULL;
        if (n80 == 0) continue;
        CHECK_OK(q4gen_render(g, &shapes[f], 80, &v));
        if (v.source) CHECK_MSG(!strstr(v.source, "griddepcontrol.wait;"), "%s[%s] sm_80: griddepcontrol.wait", name, v.params);
        free(v.source);
      }
      q4gen_free_list(list, n);
    }
  }
  q4gen_close(g);
}

/* That the default for (s, arch, m) is `want`: a template name, or
** template[params] where the parameters matter. */
static void check_default_is(q4gen *g, const q4_shape *s, int arch, int m, const char *want) {
  q4_variant v;
  memset(&v, 0, sizeof v);
  CHECK_OK(q4gen_default(g, s, arch, m, &v));
  char got[Q4_NAME_MAX + Q4_PARAMS_MAX + 2];
  snprintf(got, sizeof got, strchr(want, '[') ? "%s[%s]" : "%s", v.tmpl, v.params);
  CHECK_MSG(!strcmp(got, want), "%s N=%d K=%d g=%d flags=%d sm_%d M=%d: default %s[%s], not %s",
            q4_format_name(s->format), s->n, s->k, s->group_size, s->flags, arch, m, v.tmpl, v.params, want);
  q4_variant_free(&v);
}

/* One expected default: the shape, GPU and M, and the template serving it. */
typedef struct {
  int n, k, g, flags, arch, m;
  const char *tmpl;
} default_case;

static void check_defaults(q4gen *g, q4_format format, const default_case *cases, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const q4_shape s = {format, cases[i].n, cases[i].k, cases[i].g, cases[i].flags};
    check_default_is(g, &s, cases[i].arch, cases[i].m, cases[i].tmpl);
  }
}

/* q4_decode's FOLD (grouped q4s whose groups are whole 128-row units): bare
** codes and keep flags into accumulators of the unit,
** folded with the group's scale and zero, in place of the fp16 expansion.
** It exists for those shapes alone; the default takes it from 3 rows
** (below, q4s_imma's default serves) up to 8 (x as the mma's B), not
** above; and FOLD=0, left out of params strings, renders the kernel that
** string named before FOLD existed. */
static void test_decode_fold(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  const q4_shape with[] = {{Q4_FORMAT_Q4S, 22016, 4096, 128, 0}, {Q4_FORMAT_Q4S, 4096, 4096, 256, Q4_SHAPE_SYMMETRIC}};
  const q4_shape without[] = {{Q4_FORMAT_Q4S, 22016, 4096, 64, 0}, {Q4_FORMAT_Q4S, 22016, 4096, 4096, 0},
                              {Q4_FORMAT_Q4, 22016, 4096, 128, 0}};
  for (int i = 0; i < 5; i++) {
    const q4_shape *s = i < 2 ? &with[i] : &without[i - 2];
    q4_variant *list = NULL;
    int n = 0, fold = 0;
    CHECK_OK(q4gen_enumerate(g, "q4_decode", s, 80, &list, &n));
    for (int j = 0; j < n; j++) fold += strstr(list[j].params, "FOLD=1") != NULL;
    CHECK_MSG((fold > 0) == (i < 2), "shape %d: %d of %d variants with FOLD=1", i, fold, n);
    q4gen_free_list(list, n);
  }
  /* M = 3 (x as the mma's B: the default folds) and 16 (x as its A: it does not) */
  for (int m = 3; m <= 16; m += 13) {
    q4_variant v;
    CHECK_OK(q4gen_default(g, &with[0], 90, m, &v));
    CHECK_MSG(!strcmp(v.tmpl, "q4_decode") && strstr(v.params, m == 3 ? "XT=1,PF=0,FOLD=1" : "XT=0,PF=0") &&
                  (m == 3) == (strstr(v.params, "FOLD") != NULL),
              "q4s g128 M=%d default: %s[%s]", m, v.tmpl, v.params);
    if (v.source) {
      /* the same parameters unfolded (FOLD=0, left out of the string) and folded */
      char plain[Q4_PARAMS_MAX], params[Q4_PARAMS_MAX];
      const char *fold = strstr(v.params, ",FOLD");
      snprintf(plain, sizeof plain, "%.*s", fold ? (int)(fold - v.params) : (int)strlen(v.params), v.params);
      q4_variant unfolded = q4test_variant(v.tmpl, plain);
      CHECK_OK(q4gen_render(g, &with[0], 90, &unfolded));
      CHECK(unfolded.source && strstr(unfolded.source, "q4s_expand(") && !strstr(unfolded.source, "uacc"));
      snprintf(params, sizeof params, "%.240s,FOLD=1", plain);
      q4_variant folded = q4test_variant(v.tmpl, params);
      CHECK_OK(q4gen_render(g, &with[0], 90, &folded));
      CHECK_MSG(folded.source && strstr(folded.source, "q4s_expand_bare(") &&
                    strstr(folded.source, m == 3 ? "ukeep" : "ukacc") && !strstr(folded.source, "q4s_expand("),
                "M=%d: %s", m, folded.params);
      CHECK_MSG(!strcmp(m == 3 ? folded.hash : unfolded.hash, v.hash), "M=%d: the default is not %s", m,
                m == 3 ? params : plain);
      /* FOLD=0 named: the unfolded kernel */
      snprintf(params, sizeof params, "%.240s,FOLD=0", plain);
      q4_variant named = q4test_variant(v.tmpl, params);
      CHECK_OK(q4gen_render(g, &with[0], 90, &named));
      CHECK_MSG(!strcmp(named.hash, unfolded.hash), "%s renders %s, not %s", named.params, named.hash, unfolded.hash);
      q4_variant_free(&named);
      q4_variant_free(&folded);
      q4_variant_free(&unfolded);
    }
    q4_variant_free(&v);
  }
  /* the bound: 8 rows fold, 9 do not */
  for (int m = 8; m <= 9; m++) {
    q4_variant v;
    CHECK_OK(q4gen_default(g, &with[0], 80, m, &v));
    CHECK_MSG((strstr(v.params, "FOLD=1") != NULL) == (m == 8), "q4s g128 M=%d default: %s[%s]", m, v.tmpl, v.params);
    q4_variant_free(&v);
  }
  /* eight warps along K and half the split where that leaves 64 to 132
  ** blocks of 32 columns: 4096 (128 x 1) and 1000 (32 x 2) columns, not
  ** 5120 (160) or 256 (8 x 4) */
  static const struct {
    int n, k;
    const char *want;
  } warps[] = {
      {4096, 11008,
       "q4_decode[WARPS_N=1,CW=1,WARPS_K=8,SPLIT_K=1,M_TILES=1,UNROLL=1,PIPE=1,"
       "ORDER=0,XG=0,XT=1,PF=0,FOLD=1]"},
      {1000, 2048,
       "q4_decode[WARPS_N=1,CW=1,WARPS_K=8,SPLIT_K=2,M_TILES=1,UNROLL=1,PIPE=1,"
       "ORDER=0,XG=0,XT=1,PF=0,FOLD=1]"},
      {5120, 13824,
       "q4_decode[WARPS_N=1,CW=1,WARPS_K=4,SPLIT_K=2,M_TILES=1,UNROLL=1,PIPE=1,"
       "ORDER=0,XG=0,XT=1,PF=0,FOLD=1]"},
      {256, 4096,
       "q4_decode[WARPS_N=1,CW=1,WARPS_K=4,SPLIT_K=8,M_TILES=1,UNROLL=1,PIPE=1,"
       "ORDER=0,XG=0,XT=1,PF=0,FOLD=1]"},
  };
  for (size_t i = 0; i < sizeof warps / sizeof warps[0]; i++) {
    const q4_shape s = {Q4_FORMAT_Q4S, warps[i].n, warps[i].k, 128, 0};
    check_default_is(g, &s, 90, 3, warps[i].want);
  }
  q4gen_close(g);
}

/* q4_decode's ORDER, XG, XT, PF and FOLD exist only where they change something:
** consecutive units for groups spanning several units, rows of x in shared
** memory for act-order weights (and then for M <= 8), x as the mma's B for
** M <= 8 (blocks of 8 rows), where the variants with x as the mma's A take
** M > 8 only, and weights prefetched into L2 ahead of an XG = 1 prologue. */
static void test_decode_space(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  const q4_shape shapes[] = {{Q4_FORMAT_Q4, 22016, 4096, 4096, 0}, {Q4_FORMAT_Q4, 22016, 4096, 32, 0},
                             {Q4_FORMAT_Q4, 22016, 4096, 128, 0}, {Q4_FORMAT_Q4, 22016, 4096, 128, Q4_SHAPE_ACT_ORDER},
                             {Q4_FORMAT_Q4S, 22016, 4096, 4096, 0}, {Q4_FORMAT_Q4S, 22016, 4096, 128, 0}};
  for (int i = 0; i < 6; i++) {
    q4_variant *list = NULL;
    int n = 0, order = 0, xg = 0, xg_ok = 0, xt = 0, xt_ok = 0, pf = 0, pf_ok = 0, fold = 0;
    CHECK_OK(q4gen_enumerate(g, "q4_decode", &shapes[i], 90, &list, &n));
    for (int j = 0; j < n; j++) {
      order += strstr(list[j].params, "ORDER=1") != NULL;
      /* the most dynamic shared memory a launch asks for leaves room under
      ** sm_90's opt-in limit for the static memory of the split-K ticket */
      const int rows = list[j].m_max < list[j].tile_m ? list[j].m_max : list[j].tile_m;
      CHECK_MSG(q4_variant_smem(&list[j], rows) <= 227 * 1024 - 16, "%s: %d bytes of shared memory", list[j].params,
                q4_variant_smem(&list[j], rows));
      if (strstr(list[j].params, "XG=1")) {
        xg++;
        /* per row: the row whole (2 K bytes) and its gathered slice (at least 32 rows of K) */
        xg_ok += list[j].smem_row >= 2 * (4096 + 32) && list[j].smem_row <= 2 * (4096 + 4096 + 256) &&
                 list[j].m_max >= 1 && list[j].m_max <= 8 && list[j].tile_m == 8 &&
                 strstr(list[j].params, "XT=1") != NULL;
      } else {
        CHECK(list[j].smem_row == 0);
      }
      if (!strstr(list[j].params, "PF=0")) {
        pf++;
        pf_ok += strstr(list[j].params, "XG=1") != NULL;
      }
      fold += strstr(list[j].params, "FOLD=1") != NULL;
      if (strstr(list[j].params, "XT=1")) {
        xt++;
        xt_ok += list[j].tile_m == 8 && list[j].m_min == 1 && list[j].m_max <= 8 &&
                 strstr(list[j].params, "M_TILES=1") != NULL;
      } else {
        CHECK(list[j].m_min >= 9);
      }
    }
    /* (q4s lanes take whole 128-row units: groups of 128 span one) */
    CHECK_MSG((order > 0) == (i == 2 || i == 3), "shape %d: %d of %d variants with ORDER=1", i, order, n);
    CHECK_MSG((xg > 0) == (i == 3) && xg_ok == xg, "shape %d: %d variants with XG=1, %d as expected", i, xg, xg_ok);
    CHECK_MSG(xt > 0 && xt_ok == xt, "shape %d: %d variants with XT=1, %d as expected", i, xt, xt_ok);
    CHECK_MSG((pf > 0) == (i == 3) && pf_ok == pf, "shape %d: %d variants with PF > 0, %d as expected", i, pf, pf_ok);
    CHECK_MSG((fold > 0) == (i == 5), "shape %d: %d variants with FOLD=1", i, fold);
    q4gen_free_list(list, n);
  }
  q4_variant v;
  CHECK_OK(q4gen_default(g, &shapes[3], 90, 1, &v));
  CHECK_MSG(strstr(v.params, "XG=1") && strstr(v.params, "ORDER=1") && strstr(v.params, "XT=1") &&
                strstr(v.params, "PF=0"),
            "act-order M=1 default: %s", v.params);
  q4_variant_free(&v);
  /* from 9 rows x gathered ahead (XG = 3): the dense default's kernel, a gather kernel beside it */
  CHECK_OK(q4gen_default(g, &shapes[3], 90, 16, &v));
  q4_variant dense;
  CHECK_OK(q4gen_default(g, &shapes[2], 90, 16, &dense));
  char want[Q4_PARAMS_MAX];
  snprintf(want, sizeof want, "%s", dense.params);
  char *xg = strstr(want, "XG=0");
  if (xg) xg[3] = '3';
  CHECK_MSG(xg && !strcmp(v.params, want) && strstr(v.source, "q4tune_gather_x") && !strstr(dense.source, "q4tune_gather_x"),
            "act-order M=16 default: %s, dense %s", v.params, dense.params);
  q4_variant_free(&dense);
  q4_variant_free(&v);
  for (int i = 0; i < 6; i++) {
    CHECK_OK(q4gen_default(g, &shapes[i], 90, 8, &v));
    CHECK_MSG(strstr(v.params, "XT=1") != NULL, "shape %d M=8 default: %s", i, v.params);
    q4_variant_free(&v);
  }
  q4gen_close(g);
}

/* q4_decode's split-K blocks sum through a cluster on sm_90 (its source
** declares the cluster), through global memory before and for act-order
** weights whose x the kernel gathers itself (XG < 3). */
static void test_decode_split_cluster(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  const q4_shape s = {Q4_FORMAT_Q4, 4096, 11008, 11008, 0};
  for (int arch = 80; arch <= 90; arch += 10) {
    q4_variant *list = NULL;
    int n = 0, split = 0, ok = 0;
    CHECK_OK(q4gen_enumerate(g, "q4_decode", &s, arch, &list, &n));
    for (int j = 0; j < n; j++) {
      split += list[j].split_k > 1;
      ok += list[j].split_cluster == (list[j].split_k > 1 && arch == 90);
    }
    CHECK_MSG(split > 0 && ok == n, "sm_%d: %d of %d variants split, %d with the expected split_cluster", arch, split,
              n, ok);
    q4gen_free_list(list, n);
    q4_variant v = q4test_variant("q4_decode", "WARPS_N=1,CW=2,WARPS_K=8,SPLIT_K=4,M_TILES=1,UNROLL=2,PIPE=1,ORDER=0,XG=0,XT=0,PF=0");
    CHECK_OK(q4gen_render(g, &s, arch, &v));
    /* no minimum of blocks: ptxas budgets q4_decode's registers */
    CHECK_MSG(strstr(v.source, "__launch_bounds__(256)") != NULL, "sm_%d: launch bounds", arch);
    CHECK_MSG((strstr(v.source, "__cluster_dims__(1, 1, 4)") != NULL) == (arch == 90) &&
                  (strstr(v.source, "workspace + ") != NULL) == (arch == 80),
              "sm_%d: split-K reduction in the source", arch);
    q4_variant_free(&v);
    const q4_shape act = {Q4_FORMAT_Q4, 4096, 11008, 128, Q4_SHAPE_ACT_ORDER};
    split = 0;
    ok = 0;
    CHECK_OK(q4gen_enumerate(g, "q4_decode", &act, arch, &list, &n));
    for (int j = 0; j < n; j++) {
      split += list[j].split_k > 1;
      ok += list[j].split_cluster == (list[j].split_k > 1 && arch == 90 && strstr(list[j].params, "XG=3"));
    }
    CHECK_MSG(split > 0 && ok == n, "sm_%d act-order: %d of %d variants split, %d with the expected split_cluster", arch,
              split, n, ok);
    q4gen_free_list(list, n);
  }
  q4gen_close(g);
}

/* The default for act-order weights at m rows is the one for the same
** weights in plain row order, x gathered ahead of it (q4_decode: XG = 3):
** the same kernel and a gather kernel beside it. */
static void expect_gathered_ahead(q4gen *g, const q4_shape *act, int arch, int m) {
  q4_shape plain = *act;
  plain.flags &= ~Q4_SHAPE_ACT_ORDER;
  q4_variant v, d;
  memset(&v, 0, sizeof v);
  memset(&d, 0, sizeof d);
  CHECK_OK(q4gen_default(g, act, arch, m, &v));
  CHECK_OK(q4gen_default(g, &plain, arch, m, &d));
  char want[Q4_PARAMS_MAX];
  snprintf(want, sizeof want, "%s", d.params);
  char *xg = strstr(want, "XG=0");
  if (xg) xg[3] = '3';
  CHECK_MSG(!strcmp(v.tmpl, d.tmpl) && !strcmp(v.params, want) && v.source && strstr(v.source, "q4tune_gather_x") &&
                v.smem_row == 0,
            "N=%d K=%d sm_%d M=%d: act-order default %s[%s], plain %s[%s]", act->n, act->k, arch, m, v.tmpl, v.params,
            d.tmpl, d.params);
  q4_variant_free(&v);
  q4_variant_free(&d);
}

/* Act-order x that fits in no block's shared memory (K = 28672 on sm_86,
** 99 KB; 65536 on sm_90): from 9 rows the default gathers it ahead of the
** kernel, as at every K, and needs no shared memory for it; up to 8 rows,
** whole rows of x in shared memory (XG = 1) where a block holds them, else
** the same. q4_decode's XG = 2, which gathers x in its loop, is enumerated
** only where XG = 0 cannot hold it, for the tuner. */
static void test_act_order_long_k(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  const q4_shape k28 = {Q4_FORMAT_Q4, 4096, 28672, 128, Q4_SHAPE_ACT_ORDER};
  const q4_shape k64 = {Q4_FORMAT_Q4, 1000, 65536, 128, Q4_SHAPE_ACT_ORDER};
  static const int archs[] = {86, 90}, ms[] = {8, 9, 16, 33, 64, 100};
  for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++)
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
      expect_gathered_ahead(g, &k28, archs[a], ms[i]);
      expect_gathered_ahead(g, &k64, archs[a], ms[i]);
    }
  expect_gathered_ahead(g, &k28, 75, 16); /* sm_75 has no q4_decode: q4_wmma */
  q4_variant v;
  memset(&v, 0, sizeof v);
  CHECK_OK(q4gen_default(g, &k28, 86, 1, &v));
  CHECK_MSG(strstr(v.params, "XG=1") && v.m_max >= 1, "sm_86 M=1: default %s", v.params);
  q4_variant_free(&v);
  q4_variant *list = NULL;
  int n = 0, at16 = 0;
  CHECK_OK(q4gen_enumerate(g, "q4_decode", &k28, 86, &list, &n));
  for (int j = 0; j < n; j++) {
    if (list[j].m_min > 16 || list[j].m_max < 16) continue;
    at16++;
    CHECK_MSG(strstr(list[j].params, "XG=2") || strstr(list[j].params, "XG=3"), "sm_86 M=16: %s", list[j].params);
  }
  CHECK_MSG(at16 > 0, "sm_86 K=28672: no variant for M=16 among %d", n);
  /* XG = 2 reads x through perm where it uses it: no gathering prologue */
  for (int j = 0; j < n; j++) {
    if (!strstr(list[j].params, "XG=2")) continue;
    v = q4test_variant("q4_decode", list[j].params);
    CHECK_OK(q4gen_render(g, &k28, 86, &v));
    CHECK_MSG(v.source && strstr(v.source, "q4_load_x8(x, perm, row, k)") &&
                  !strstr(v.source, "perm is read coalesced") && !strstr(v.source, "q4tune_gather_x"),
              "XG=2 source of %s", list[j].params);
    q4_variant_free(&v);
    break;
  }
  q4gen_free_list(list, n);
  /* enumerated only for tiles whose x XG = 0 cannot hold even split eight
  ** ways: none at K = 4096, four m tiles at K = 11008 (243 KB), most at 65536 */
  static const struct {
    int k, want;
  } spaces[] = {{4096, 0}, {11008, 1}, {65536, 1}};
  for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) {
    const q4_shape s = {Q4_FORMAT_Q4, 4096, spaces[i].k, 128, Q4_SHAPE_ACT_ORDER};
    q4_variant *space = NULL;
    int count = 0, xg2 = 0;
    CHECK_OK(q4gen_enumerate(g, "q4_decode", &s, 90, &space, &count));
    for (int j = 0; j < count; j++) xg2 += strstr(space[j].params, "XG=2") != NULL;
    CHECK_MSG((xg2 > 0) == spaces[i].want && count > xg2, "K=%d: %d of %d variants XG=2", spaces[i].k, xg2, count);
    q4gen_free_list(space, count);
  }
  q4gen_close(g);
}

/* q4s_imma's launch bounds ask for blocks enough per SM to run the grid in
** one wave on 132 SMs, down to a budget of 96 registers a thread. */
static void test_imma_min_blocks(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  static const struct {
    int n, k;
    const char *params, *bounds;
  } cases[] = {
      /* 344 blocks of 128 threads: 3 an SM */
      {22016, 4096, "WARPS_N=2,CW=1,WARPS_K=2,SPLIT_K=1,UNROLL=1,PIPE=1,XTILES=1,COPIES=8", "__launch_bounds__(128, 3)"},
      /* 128 blocks: 1 */
      {4096, 11008, "WARPS_N=1,CW=1,WARPS_K=8,SPLIT_K=1,UNROLL=1,PIPE=1,XTILES=1,COPIES=8", "__launch_bounds__(256, 1)"},
      /* 688 blocks of 256 threads want 6 an SM; 96 registers allow 2 */
      {22016, 4096, "WARPS_N=1,CW=1,WARPS_K=8,SPLIT_K=1,UNROLL=1,PIPE=1,XTILES=1,COPIES=8", "__launch_bounds__(256, 2)"},
      /* one block of 16 warps a strip: 1 */
      {4096, 11008, "WARPS_N=1,CW=1,WARPS_K=16,SPLIT_K=1,UNROLL=1,PIPE=0,XTILES=1,COPIES=16", "__launch_bounds__(512, 1)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const q4_shape s = {Q4_FORMAT_Q4S, cases[i].n, cases[i].k, cases[i].k, 0};
    q4_variant v = q4test_variant("q4s_imma", cases[i].params);
    CHECK_OK(q4gen_render(g, &s, 90, &v));
    CHECK_MSG(v.source && strstr(v.source, cases[i].bounds), "N=%d %s: not %s", cases[i].n, cases[i].params,
              cases[i].bounds);
    q4_variant_free(&v);
  }
  q4gen_close(g);
}

/* q4s_imma's blocks of more than 8 warps: one a strip along all of K
** (WARPS_N = 1, no split-K, one unit a round, no x tiles ahead), and only
** where those blocks are no more than 132, one an SM. */
static void test_imma_big_blocks(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  static const struct {
    int n, k, want;
  } spaces[] = {{4096, 11008, 1}, {4096, 4096, 1}, {22016, 4096, 0}};
  for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) {
    const q4_shape s = {Q4_FORMAT_Q4S, spaces[i].n, spaces[i].k, spaces[i].k, 0};
    q4_variant *list = NULL;
    int n = 0, big = 0;
    CHECK_OK(q4gen_enumerate(g, "q4s_imma", &s, 90, &list, &n));
    for (int j = 0; j < n; j++) {
      if (!strstr(list[j].params, "WARPS_K=16")) continue;
      big++;
      CHECK_MSG(list[j].threads > 256 && strstr(list[j].params, "WARPS_N=1,") &&
                    strstr(list[j].params, "SPLIT_K=1,UNROLL=1,PIPE=0,XTILES=1,"),
                "N=%d K=%d: %s", spaces[i].n, spaces[i].k, list[j].params);
    }
    CHECK_MSG((big > 0) == spaces[i].want && n > big, "N=%d K=%d: %d of %d variants over 8 warps", spaces[i].n,
              spaces[i].k, big, n);
    q4gen_free_list(list, n);
  }
  /* named outright, a big block where it would take 688 blocks is refused */
  const q4_shape wide = {Q4_FORMAT_Q4S, 22016, 4096, 4096, 0};
  q4_variant v = q4test_variant("q4s_imma", "WARPS_N=1,CW=1,WARPS_K=16,SPLIT_K=1,UNROLL=1,PIPE=0,XTILES=1,COPIES=8");
  CHECK(q4gen_render(g, &wide, 90, &v) != Q4_OK);
  q4_variant_free(&v);
  q4gen_close(g);
}

/* q4s_imma's default: per-channel weights and groups of whole 128-row
** units alike, at one and two rows of x; q4_decode's above two rows and
** for groups that split a unit. 64-column strips where 32-column ones
** would spill up to an eighth of a wave (five blocks an SM, 132 SMs)
** past whole waves: 22016 (688 strips) and 21152 (661), not 28672 (896)
** or 21120 (660, one wave). One block a strip, 16 warps along K and 16
** table copies, where the strips are 100 to 132 and K >= 4096. */
static void test_imma_default(void) {
#define WIDE "WARPS_N=1,CW=2,WARPS_K=4,SPLIT_K=1,UNROLL=1,PIPE=0,XTILES=1,COPIES=8"
#define NARROW "WARPS_N=1,CW=1,WARPS_K=4,SPLIT_K=1,UNROLL=1,PIPE=0,XTILES=1,COPIES=8"
#define STRIP "WARPS_N=1,CW=1,WARPS_K=16,SPLIT_K=1,UNROLL=1,PIPE=0,XTILES=1,COPIES=16"
#define SPLIT(S) "WARPS_N=1,CW=1,WARPS_K=4,SPLIT_K=" #S ",UNROLL=1,PIPE=0,XTILES=1,COPIES=8"
  q4gen *g = open_real_templates();
  if (!g) return;
  static const default_case cases[] = {
      {22016, 4096, 4096, 0, 90, 1, "q4s_imma[" WIDE "]"},
      {22016, 4096, 128, 0, 90, 2, "q4s_imma[" WIDE "]"},
      {21152, 4096, 4096, 0, 80, 1, "q4s_imma[" WIDE "]"},
      {21120, 4096, 4096, 0, 90, 1, "q4s_imma[" NARROW "]"},
      {28672, 4096, 128, 0, 90, 1, "q4s_imma[" NARROW "]"},
      {4096, 11008, 128, 0, 80, 2, "q4s_imma[" STRIP "]"},
      {4096, 4096, 256, Q4_SHAPE_SYMMETRIC, 90, 2, "q4s_imma[" STRIP "]"},
      {3200, 5120, 5120, 0, 90, 1, "q4s_imma[" STRIP "]"},     /* 100 strips */
      {3104, 4096, 4096, 0, 90, 1, "q4s_imma[" SPLIT(4) "]"},   /* 97 strips */
      {4256, 4096, 4096, 0, 90, 1, "q4s_imma[" SPLIT(2) "]"},   /* 133 strips */
      {4096, 2048, 4096, 0, 90, 1, "q4s_imma[" SPLIT(2) "]"},   /* 16 units: one a warp */
      {4096, 3968, 4096, 0, 90, 1, "q4s_imma[" SPLIT(2) "]"},   /* 31 units */
      {22016, 4096, 128, 0, 90, 3, "q4_decode"},
      {22016, 4096, 64, 0, 90, 1, "q4_decode"},
  };
  check_defaults(g, Q4_FORMAT_Q4S, cases, sizeof cases / sizeof cases[0]);
  /* On a GPU of 108 SMs (the A100's) the 128 strips of N = 4096 would be
  ** two waves of 16-warp blocks: split-K there, and no such variant to
  ** tune; 100 strips (3200) still take one block a strip, 81 (2592) not.
  ** A wave is 540 blocks there: 545 strips take 64 columns (on 132 SMs,
  ** 660 a wave, 32). */
  q4gen_set_sms(g, 108);
  static const default_case a100[] = {
      {4096, 11008, 128, 0, 80, 1, "q4s_imma[" SPLIT(2) "]"},
      {3200, 5120, 5120, 0, 80, 1, "q4s_imma[" STRIP "]"},
      {2592, 4096, 4096, 0, 80, 1, "q4s_imma[" SPLIT(4) "]"},
      {17440, 4096, 4096, 0, 80, 1, "q4s_imma[" WIDE "]"},  /* 545 strips: 5 past 540 */
  };
  check_defaults(g, Q4_FORMAT_Q4S, a100, sizeof a100 / sizeof a100[0]);
  const q4_shape wide = {Q4_FORMAT_Q4S, 4096, 11008, 11008, 0};
  q4_variant v = q4test_variant("q4s_imma", STRIP);
  CHECK(q4gen_render(g, &wide, 80, &v) != Q4_OK);
  q4_variant_free(&v);
  q4gen_set_sms(g, 132);
  CHECK_OK(q4gen_render(g, &wide, 80, &v));
  q4_variant_free(&v);
  check_default_is(g, &(q4_shape){Q4_FORMAT_Q4S, 17440, 4096, 4096, 0}, 80, 1, "q4s_imma[" NARROW "]");
  q4gen_close(g);
#undef WIDE
#undef NARROW
#undef STRIP
#undef SPLIT
}

/* The other templates size their grids by the GPU's SM count too: on 108
** SMs (the A100's) q4_decode's default splits K until two blocks an SM,
** q4_wgmma's takes 108 tiles as a wave, and q4s_imma's launch bounds ask
** for the blocks a wave of 108 needs. On 132 all are as measured there. */
static void test_defaults_sms(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  q4gen_set_cublas(g, 0);  /* M = 100: the single-pass defaults */
  const q4_shape decode = {Q4_FORMAT_Q4, 4096, 11008, 11008, 0}, tiles108 = {Q4_FORMAT_Q4, 13824, 4096, 4096, 0};
  const q4_shape imma = {Q4_FORMAT_Q4S, 16384, 4096, 4096, 0};
  static const struct {
    int sms, split;
    const char *wgmma, *bounds;
  } gpus[] = {{132, 4, "q4_mma", "__launch_bounds__(128, 4)"}, {108, 2, "q4_wgmma", "__launch_bounds__(128, 5)"}};
  for (size_t i = 0; i < sizeof gpus / sizeof gpus[0]; i++) {
    q4gen_set_sms(g, gpus[i].sms);
    /* 128 strips of 32 columns at M = 17: 512 blocks on 132 SMs, 256 on 108 */
    q4_variant v;
    memset(&v, 0, sizeof v);
    CHECK_OK(q4gen_default(g, &decode, 80, 17, &v));
    char want[32];
    snprintf(want, sizeof want, "SPLIT_K=%d,", gpus[i].split);
    CHECK_MSG(!strcmp(v.tmpl, "q4_decode") && strstr(v.params, want), "%d SMs: %s[%s], not %s", gpus[i].sms, v.tmpl,
              v.params, want);
    q4_variant_free(&v);
    /* 108 column tiles of 128 at M = 100: a wave on 108 SMs, not on 132 */
    check_default_is(g, &tiles108, 90, 100, gpus[i].wgmma);
    /* 512 blocks of 128 threads: 4 an SM on 132, 5 on 108 */
    v = q4test_variant("q4s_imma", "WARPS_N=1,CW=1,WARPS_K=4,SPLIT_K=1,UNROLL=1,PIPE=0,XTILES=1,COPIES=8");
    CHECK_OK(q4gen_render(g, &imma, 90, &v));
    CHECK_MSG(v.source && strstr(v.source, gpus[i].bounds), "%d SMs: not %s", gpus[i].sms, gpus[i].bounds);
    q4_variant_free(&v);
  }
  q4gen_close(g);
}

/* q4_wgmma: sm_90 only. Its default from 33 to 64 rows (one 64-row tile,
** K split until the tiles make 132), above 64 rows only where its
** 128 x 128 tiles give each of 132 SMs one (else q4_mma's default); for
** q4s from 33 rows wherever it fits. */
static void test_wgmma_defaults(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  q4gen_set_cublas(g, 0);  /* large M: the single-pass defaults */
  static const default_case cases[] = {
      {22016, 4096, 4096, 0, 90, 256, "q4_wgmma"},
      {22016, 4096, 128, 0, 90, 100, "q4_wgmma"},
      {12288, 4096, 4096, Q4_SHAPE_SYMMETRIC, 90, 256, "q4_wgmma"},  /* 96 x 2 tiles */
      {12288, 4096, 4096, 0, 90, 100, "q4_mma"},                     /* 96 tiles */
      {4096, 11008, 4096, 0, 90, 256, "q4_mma"},                     /* 32 x 2 tiles */
      {4096, 11008, 4096, 0, 90, 2048, "q4_wgmma"},
      {22016, 4096, 4096, 0, 90, 64, "q4_wgmma"},
      {22016, 4096, 4096, 0, 90, 32, "q4_decode"},
      /* act-order weights as dense ones above 32 rows, x gathered ahead */
      {22016, 4096, 128, Q4_SHAPE_ACT_ORDER, 90, 32, "q4_decode"},
      {22016, 4096, 128, Q4_SHAPE_ACT_ORDER, 90, 64, "q4_wgmma"},
      {22016, 4096, 128, Q4_SHAPE_ACT_ORDER, 90, 256, "q4_wgmma"},
      {4096, 4096, 128, Q4_SHAPE_ACT_ORDER, 90, 64, "q4_mma"},
      {22016, 4096, 128, Q4_SHAPE_ACT_ORDER, 80, 256, "q4_mma"},
      {22016, 4096, 4096, 0, 80, 64, "q4_decode"},
      {22016, 4096, 4096, 0, 80, 256, "q4_mma"},
  };
  check_defaults(g, Q4_FORMAT_Q4, cases, sizeof cases / sizeof cases[0]);
  /* 33 to 64 rows on sm_90: from 8448 columns q4_wgmma's 128-column tiles,
  ** split until 132 tiles (15360: 120 x 2); narrower, q4_mma's 64 columns,
  ** split until 128 (5120: 80 x 2, 8192: 128 x 1); sm_80 keeps q4_decode */
  static const struct {
    int n, k, m, arch;
    const char *want;
  } low[] = {
      {27648, 5120, 64, 90, "q4_wgmma[WG=1,MW=1,TN=128,BK=64,STAGES=4,SPLIT_K=1]"},
      {15360, 5120, 33, 90, "q4_wgmma[WG=1,MW=1,TN=128,BK=64,STAGES=4,SPLIT_K=2]"},
      {8448, 4096, 64, 90, "q4_wgmma[WG=1,MW=1,TN=128,BK=64,STAGES=4,SPLIT_K=2]"},
      {8192, 4096, 64, 90, "q4_mma[WARPS_N=2,WARPS_K=4,MT=2,CW=1,BK=128,STAGES=4,SPLIT_K=1]"},
      {5120, 13824, 64, 90, "q4_mma[WARPS_N=2,WARPS_K=4,MT=2,CW=1,BK=128,STAGES=4,SPLIT_K=2]"},
      {4096, 4096, 33, 90, "q4_mma[WARPS_N=2,WARPS_K=4,MT=2,CW=1,BK=128,STAGES=4,SPLIT_K=2]"},
      {4096, 4096, 32, 90, "q4_decode"},
      {4096, 4096, 64, 80, "q4_decode"},
  };
  for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
    const q4_shape s = {Q4_FORMAT_Q4, low[i].n, low[i].k, low[i].k, 0};
    check_default_is(g, &s, low[i].arch, low[i].m, low[i].want);
  }
  const q4_shape s = {Q4_FORMAT_Q4, 4096, 4096, 4096, 0};
  q4_variant *list = NULL;
  int n80 = -1, n90 = 0;
  CHECK_OK(q4gen_enumerate(g, "q4_wgmma", &s, 80, &list, &n80));
  q4gen_free_list(list, n80);
  CHECK_OK(q4gen_enumerate(g, "q4_wgmma", &s, 90, &list, &n90));
  q4gen_free_list(list, n90);
  CHECK_MSG(n80 == 0 && n90 > 0, "q4_wgmma variants: %d for sm_80 (want none), %d for sm_90", n80, n90);
  /* q4s: the default from 33 rows on sm_90 wherever its check passes:
  ** up to 64 rows one warpgroup of 64 columns; 256 x 128 tiles above 128
  ** rows where they make 128 or more, else 64-column tiles with K split
  ** until they fill the GPU; q4_decode's elsewhere */
  static const struct {
    int n, k, g, arch, m;
    const char *want;
  } sparse[] = {
      {22016, 4096, 4096, 90, 100, "q4_wgmma[WG=2,MW=1,TN=64,BK=128,STAGES=4,SPLIT_K=1]"},
      {22016, 4096, 4096, 90, 256, "q4_wgmma[WG=2,MW=2,TN=128,BK=64,STAGES=4,SPLIT_K=1]"},
      {4096, 11008, 128, 90, 100, "q4_wgmma[WG=2,MW=1,TN=64,BK=64,STAGES=4,SPLIT_K=4]"},
      {4096, 11008, 4096, 90, 256, "q4_wgmma[WG=2,MW=1,TN=64,BK=128,STAGES=4,SPLIT_K=2]"},
      {4096, 11008, 4096, 90, 1024, "q4_wgmma[WG=2,MW=2,TN=128,BK=64,STAGES=4,SPLIT_K=1]"},
      {4096, 4096, 4096, 90, 2048, "q4_wgmma[WG=2,MW=2,TN=128,BK=64,STAGES=4,SPLIT_K=1]"},
      {22016, 4096, 4096, 90, 64, "q4_wgmma[WG=1,MW=1,TN=64,BK=64,STAGES=4,SPLIT_K=1]"},
      {5120, 13824, 4096, 90, 40, "q4_wgmma[WG=1,MW=1,TN=64,BK=64,STAGES=4,SPLIT_K=2]"},
      {22016, 4096, 4096, 90, 32, "q4_decode"},
      {1000, 4160, 4160, 90, 64, "q4_decode"},
      {1000, 4160, 4160, 90, 256, "q4_decode"},
      {22016, 4096, 4096, 80, 256, "q4_decode"},
  };
  for (size_t i = 0; i < sizeof sparse / sizeof sparse[0]; i++) {
    const q4_shape sp = {Q4_FORMAT_Q4S, sparse[i].n, sparse[i].k, sparse[i].g, 0};
    check_default_is(g, &sp, sparse[i].arch, sparse[i].m, sparse[i].want);
  }
  q4gen_close(g);
}

/* q4_wgmma's WN (two warpgroups side by side along N): enumerated for q4s
** alone, one warpgroup of one 64-row m tile, tuned up to 64 rows; WN=1,
** left out of params strings, renders the kernel named before WN existed,
** and a WN=2 kernel splits the tile's columns between its warpgroups. */
static void test_wgmma_wn(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  const q4_shape shapes[] = {{Q4_FORMAT_Q4S, 22016, 4096, 4096, 0}, {Q4_FORMAT_Q4S, 4096, 11008, 128, 0},
                             {Q4_FORMAT_Q4, 22016, 4096, 4096, 0}, {Q4_FORMAT_Q4, 4096, 11008, 128, 0}};
  for (int i = 0; i < 4; i++) {
    q4_variant *list = NULL;
    int n = 0, wn = 0, ok = 1;
    CHECK_OK(q4gen_enumerate(g, "q4_wgmma", &shapes[i], 90, &list, &n));
    for (int j = 0; j < n; j++) {
      if (!strstr(list[j].params, "WN=2")) continue;
      wn++;
      ok &= !strncmp(list[j].params, "WG=1,MW=1,", 10) && list[j].threads == 288 && list[j].tile_m == 64 &&
            list[j].m_min == 33 && list[j].m_max == 64;
    }
    CHECK_MSG((wn > 0) == (i < 2) && ok, "shape %d: %d of %d variants with WN=2 (as wanted: %d)", i, wn, n, ok);
    q4gen_free_list(list, n);
  }
  const char *base = "WG=1,MW=1,TN=128,BK=64,STAGES=4,SPLIT_K=2";
  char params[Q4_PARAMS_MAX];
  q4_variant plain = q4test_variant("q4_wgmma", base);
  snprintf(params, sizeof params, "%s,WN=1", base);
  q4_variant one = q4test_variant("q4_wgmma", params);
  snprintf(params, sizeof params, "%s,WN=2", base);
  q4_variant two = q4test_variant("q4_wgmma", params);
  CHECK_OK(q4gen_render(g, &shapes[0], 90, &plain));
  CHECK_OK(q4gen_render(g, &shapes[0], 90, &one));
  CHECK_OK(q4gen_render(g, &shapes[0], 90, &two));
  CHECK(!strcmp(plain.hash, one.hash) && strcmp(plain.hash, two.hash) != 0);
  CHECK(plain.source && !strstr(plain.source, "TNW") && strstr(plain.source, "m64n128k16"));
  CHECK(two.source && strstr(two.source, "constexpr int WN = 2, TNW = TILE_N / WN;") &&
        strstr(two.source, "m64n64k16") && two.threads == 288 && one.threads == 160);
  /* dense weights: refused when named */
  q4_variant dense = q4test_variant("q4_wgmma", params);
  CHECK(q4gen_render(g, &shapes[2], 90, &dense) == Q4_ERR_TEMPLATE && strstr(q4_last_error(), "q4s only"));
  q4_variant_free(&dense);
  q4_variant_free(&two);
  q4_variant_free(&one);
  q4_variant_free(&plain);
  q4gen_close(g);
}

/* q4_dqgemm: the default from M buckets 256 (q4s) and 512 (dense)
** wherever cuBLAS can run, its chunk the widest that passes its check;
** never once cuBLAS failed. */
static void test_dqgemm_default(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  static const struct {
    q4_format f;
    int n, k, g, flags, arch, m, cublas;
    const char *want;  /* template[params], or a template name alone */
  } cases[] = {
      {Q4_FORMAT_Q4, 22016, 4096, 4096, 0, 90, 1024, 1, "q4_dqgemm[CHUNK_N=8192]"},
      {Q4_FORMAT_Q4, 4096, 11008, 4096, 0, 90, 2048, 1, "q4_dqgemm[CHUNK_N=2048]"},
      {Q4_FORMAT_Q4, 22016, 4096, 128, Q4_SHAPE_ACT_ORDER, 90, 4096, 1, "q4_dqgemm[CHUNK_N=8192]"},
      {Q4_FORMAT_Q4S, 4096, 4096, 4096, 0, 90, 2048, 1, "q4_dqgemm[CHUNK_N=4096]"},
      {Q4_FORMAT_Q4, 22016, 4096, 4096, 0, 80, 2048, 1, "q4_dqgemm[CHUNK_N=8192]"},
      {Q4_FORMAT_Q4, 22016, 4096, 4096, 0, 90, 512, 1, "q4_dqgemm[CHUNK_N=8192]"},
      {Q4_FORMAT_Q4S, 4096, 11008, 4096, 0, 90, 256, 1, "q4_dqgemm[CHUNK_N=2048]"},
      {Q4_FORMAT_Q4, 22016, 4096, 4096, 0, 90, 256, 1, "q4_wgmma"},
      {Q4_FORMAT_Q4S, 22016, 4096, 4096, 0, 90, 128, 1, "q4_wgmma"},
      {Q4_FORMAT_Q4, 22016, 4096, 4096, 0, 90, 2048, 0, "q4_wgmma"},
      {Q4_FORMAT_Q4S, 4096, 4096, 4096, 0, 90, 2048, 0, "q4_wgmma"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const q4_shape s = {cases[i].f, cases[i].n, cases[i].k, cases[i].g, cases[i].flags};
    q4gen_set_cublas(g, cases[i].cublas);
    check_default_is(g, &s, cases[i].arch, cases[i].m, cases[i].want);
  }
  q4gen_close(g);
}

/* One point of a sweep of defaults: 1 if (s, arch, m) gets a default
** kernel that can run M rows (one holding whole rows of x in shared memory
** holds all of them), else 0, the first five failures reported. */
static int has_default(q4gen *g, const q4_shape *s, int arch, int m, int *failures) {
  q4_variant v;
  memset(&v, 0, sizeof v);
  q4_status st = q4gen_default(g, s, arch, m, &v);
  if (!st && v.smem_row && m > v.m_max) st = q4_err(Q4_ERR_TEMPLATE, "%s holds %d rows of x", v.params, v.m_max);
  if (!st && !v.source) st = q4_err(Q4_ERR_TEMPLATE, "%s[%s]: no source", v.tmpl, v.params);
  if (st && (*failures)++ < 5)
    fprintf(stderr, "no default for %s N=%d K=%d g=%d flags=%d sm_%d M=%d: %s\n", q4_format_name(s->format), s->n,
            s->k, s->group_size, s->flags, arch, m, q4_last_error());
  q4_variant_free(&v);
  return !st;
}

/* q4_matmul never fails for lack of tuning: every valid shape, with every
** weight kind, gets a default kernel for every M, on sm_80 and sm_90. */
static void test_real_defaults(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  /* (N = 256, q4s 1024 x 2048 and 1024 x 3072, llama-3.2-3b's k and v
  ** projections: too small to fill a GPU, so no launch is pruned for
  ** having too few warps; 4096 x 65536 act-order: x gathered in the loop;
  ** K = 64, too short for q4_mma's and q4_wmma's pipelines at any M) */
  static const int shapes[][3] = {{4096, 4096, 128},  {22016, 4096, 4096}, {4096, 11008, 128},
                                  {12288, 4096, 64},   {4104, 4096, 32},    {8, 32, 32},
                                  {28672, 8192, 128},  {8192, 28672, 4096}, {256, 4096, 128},
                                  {1024, 2048, 2048},  {4096, 65536, 128},  {1024, 3072, 3072},
                                  {4096, 64, 64}};
  static const int ms[] = {1, 2, 16, 17, 64, 100, 255, 1024, 2048, 4096, 5000};
  static const int archs[] = {80, 86, 90};
  int failures = 0;
  for (size_t ai = 0; ai < sizeof archs / sizeof archs[0]; ai++)
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
      for (int kind = 0; kind < 6; kind++)  /* q4 with every flag combination, q4s with and without zeros */
        for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) {
          const q4_shape s = {kind < 4 ? Q4_FORMAT_Q4 : Q4_FORMAT_Q4S, shapes[i][0], shapes[i][1], shapes[i][2],
                              kind & 3};
          has_default(g, &s, archs[ai], ms[j], &failures);
        }
  CHECK_MSG(failures == 0, "%d (shape, M) pairs without a default kernel", failures);
  /* sm_75 (64 KB of shared memory): q4_wmma alone, its row tiles at most
  ** 64 rows once 128 do not fit, so dense weights have a kernel at every M */
  q4gen_set_cublas(g, 0);
  for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) {
    const q4_shape s = {Q4_FORMAT_Q4, 22016, 4096, 128, 0};
    q4_variant v;
    memset(&v, 0, sizeof v);
    CHECK_OK(q4gen_default(g, &s, 75, ms[j], &v));
    CHECK_MSG(!strcmp(v.tmpl, "q4_wmma"), "sm_75 M=%d: default %s", ms[j], v.tmpl);
    CHECK_MSG(ms[j] <= 64 || strstr(v.params, "BLOCK_M=64,"), "sm_75 M=%d: default %s[%s]", ms[j], v.tmpl, v.params);
    q4_variant_free(&v);
  }
  q4gen_close(g);
}

/* Every shape a user might bring has a default at every M, on every
** architecture the single-pass kernels take: a sweep of narrow and wide N,
** short and long K, every weight kind, grouped and per-channel. (Before
** 9fd3e4e N = 256 and some q4s shapes near 1024 x 3072 had none.) */
static void test_default_coverage(void) {
  q4gen *g = open_real_templates();
  if (!g) return;
  static const int ns[] = {8, 64, 256, 1000, 1024, 3072, 4096, 22016};
  static const int ks[] = {64, 128, 2048, 3072, 4096, 28672};
  static const int ms[] = {1, 8, 9, 16, 17, 33, 64, 65, 128, 256, 512, 4096};
  static const int archs[] = {80, 86, 90};
  int asked = 0, failures = 0;
  for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++)
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
      for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
        for (int kind = 0; kind < 12; kind++) {  /* q4 with every flag, q4s with and without zeros; x2 grouped */
          const int grouped = kind >= 6, k6 = kind % 6;
          const q4_shape s = {k6 < 4 ? Q4_FORMAT_Q4 : Q4_FORMAT_Q4S, ns[i], ks[j], grouped ? 64 : ks[j], k6 & 3};
          for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++, asked++)
            has_default(g, &s, archs[a], ms[mi], &failures);
        }
  CHECK_MSG(failures == 0, "%d of %d (shape, kind, M, arch) points without a default", failures, asked);
  q4gen_close(g);
}

int main(void) {
  test_real_templates();
  test_early_launch();
  test_decode_fold();
  test_decode_space();
  test_decode_split_cluster();
  test_act_order_long_k();
  test_imma_min_blocks();
  test_imma_big_blocks();
  test_imma_default();
  test_defaults_sms();
  test_wgmma_defaults();
  test_wgmma_wn();
  test_dqgemm_default();
  test_real_defaults();
  test_default_coverage();
  return q4test_done("test_templates");
}
