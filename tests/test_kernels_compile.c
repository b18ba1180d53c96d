/*
** test_kernels_compile.c -- every variant of the default parameter space of
** every embedded template compiles with NVRTC, for sm_80 and sm_90, on real
** shapes of both formats (SHAPES below).
** No GPU needed. Rendering is serial (a q4gen is not thread-safe); the
** compiles run on a pool of threads (one per CPU, at least 2).
**
** Act-order variants that read x gathered ahead of the kernel (every
** family but q4_decode's XG < 3) are checked, each, to be byte for byte
** the same variant for plain weights of the shape with C.gather_x's
** kernel after it; one in ten of them is compiled (the kernel text is the
** plain family's, which the plain shapes compile at their sizes, and the
** gather kernel is the same text for all). That spares about 3,300
** compiles.
**
** Spills are not failures: the count of variants that spill is printed.
** Set Q4TUNE_COMPILE_QUICK to compile only every 10th variant, and
** Q4TUNE_COMPILE_FORMAT=q4 or q4s to compile the shapes of one format.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "q4_nvrtc.h"
#include "q4gen.h"
#include "q4test.h"
#include "q4test_variant.h"
#include "q4test_pool.h"

static const int ARCHS[] = {80, 90};
#define NARCHS 2
static const q4_shape SHAPES[] = {
    {Q4_FORMAT_Q4, 4096, 4096, 4096},  /* per-channel */
    {Q4_FORMAT_Q4, 22016, 4096, 128},
    /* symmetric weights: the code paths that read no zeros */
    {Q4_FORMAT_Q4, 11008, 4096, 64, Q4_SHAPE_SYMMETRIC},
    /* symmetric act-order weights: x gathered through perm as well (K long
    ** enough for q4_decode's XG = 2 variants with four m tiles) */
    {Q4_FORMAT_Q4, 4096, 11008, 128, Q4_SHAPE_SYMMETRIC | Q4_SHAPE_ACT_ORDER},
    /* 16:32 sparse weights, per-channel and grouped symmetric */
    {Q4_FORMAT_Q4S, 4096, 11008, 11008},
    {Q4_FORMAT_Q4S, 22016, 4096, 128, Q4_SHAPE_SYMMETRIC},
};
#define NSHAPES 6

/* Whether act-order variant v (rendered) is its plain-order twin -- the
** same parameters, XG=0 for q4_decode's XG=3, on the shape without
** ACT_ORDER -- followed by the gather kernel. *gather holds that tail's
** text: set by the first such variant of a shape and arch, the same for
** every other. */
static int is_twin_and_gather(q4gen *g, const q4_shape *s, int arch, const q4_variant *v, char **gather) {
  q4_shape plain = *s;
  plain.flags &= ~Q4_SHAPE_ACT_ORDER;
  q4_variant t = q4test_variant(v->tmpl, v->params);
  char *xg = strstr(t.params, "XG=3");
  if (xg) xg[3] = '0';
  q4_status st = q4gen_render(g, &plain, arch, &t);
  CHECK_MSG(st == Q4_OK, "%s[%s] sm_%d: no plain-order twin %s: %s", v->tmpl, v->params, arch, t.params,
            q4_last_error());
  if (st) return 0;
  const size_t n = strlen(t.source);
  const char *tail = v->source + n;
  int same = !strncmp(v->source, t.source, n) && strstr(tail, "q4tune_gather_x(") != NULL;
  if (same && !*gather) *gather = strdup(tail);
  same = same && *gather && !strcmp(tail, *gather);
  q4_variant_free(&t);
  return same;
}

typedef struct job {
  q4_variant v;      /* rendered */
  int tmpl, shape, arch_i;
  /* results */
  q4_status st;
  char msg[512];
  size_t cubin_size;
  int regs, spill;
  double ms;
} job;

static job *jobs;
static int njobs;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void compile_job(int i, void *ctx) {
  (void)ctx;
  job *j = &jobs[i];
  char name[Q4_NAME_MAX + 8];
  snprintf(name, sizeof name, "%s.cu", j->v.tmpl);
  q4_compiled c;
  j->st = q4_nvrtc_compile(j->v.source, name, ARCHS[j->arch_i], &c);
  if (j->st == Q4_OK) {
    j->cubin_size = c.cubin ? c.size : 0;
    j->regs = c.regs;
    j->spill = c.spill_bytes;
    j->ms = c.compile_ms;
    q4_compiled_free(&c);
  } else {
    snprintf(j->msg, sizeof j->msg, "%s", q4_last_error());
  }
  /* the source is no longer needed */
  q4_variant_free(&j->v);
}

int main(void) {
  const int quick = getenv("Q4TUNE_COMPILE_QUICK") && *getenv("Q4TUNE_COMPILE_QUICK");
  const char *only = getenv("Q4TUNE_COMPILE_FORMAT");
  int major = 0, minor = 0;
  q4_status st = q4_nvrtc_version(&major, &minor);
  CHECK_OK(st);
  if (st) return q4test_done("test_kernels_compile");
  printf("NVRTC %d.%d%s\n", major, minor, quick ? " (Q4TUNE_COMPILE_QUICK: every 10th variant)" : "");

  q4gen *g = NULL;
  CHECK_OK(q4gen_open(&g));
  if (!g) return q4test_done("test_kernels_compile");
  const int ntmpl = q4gen_count(g);
  CHECK_MSG(ntmpl > 0, "no embedded templates");

  /* enumerate and render everything first */
  int cap = 1024;
  jobs = calloc((size_t)cap, sizeof *jobs);
  int enumerated[64][NSHAPES][NARCHS] = {{{0}}};
  char *gather[NSHAPES][NARCHS] = {{0}};  /* the gather kernel's text, per act-order shape */
  int twins = 0, twins_compiled = 0;
  const double t_render = now_s();
  for (int t = 0; t < ntmpl && t < 64; t++) {
    const char *tn = q4gen_name(g, t);
    for (int s = 0; s < NSHAPES; s++)
      for (int a = 0; a < NARCHS; a++) {
        if (only && *only && strcmp(only, q4_format_name(SHAPES[s].format))) continue;
        if (!q4gen_supports(g, t, SHAPES[s].format)) {
          if (!a) printf("%s: does not take %s, skipped\n", tn, q4_format_name(SHAPES[s].format));
          continue;
        }
        q4_variant *list = NULL;
        int count = 0;
        st = q4gen_enumerate(g, tn, &SHAPES[s], ARCHS[a], &list, &count);
        CHECK_MSG(st == Q4_OK, "enumerate %s N=%d g=%d sm_%d: %s: %s", tn, SHAPES[s].n, SHAPES[s].group_size,
                  ARCHS[a], q4_status_name(st), q4_last_error());
        if (st) continue;
        /* q4s_imma declines groups that split a 128-row unit on purpose and
        ** q4_wgmma every GPU but sm_90; any other empty space means a
        ** template's check rejects a shape it should take */
        const int wgmma = !strcmp(tn, "q4_wgmma");
        const int may_decline = (wgmma && ARCHS[a] != 90) ||
                                (!strcmp(tn, "q4s_imma") && SHAPES[s].group_size < SHAPES[s].k &&
                                 SHAPES[s].group_size % 128);
        CHECK_MSG(count > 0 || may_decline, "%s N=%d g=%d sm_%d: no variants", tn, SHAPES[s].n,
                  SHAPES[s].group_size, ARCHS[a]);
        enumerated[t][s][a] = count;
        for (int i = 0; i < count; i++) {
          if (quick && i % 10) continue;
          q4_variant v = list[i];
          v.source = NULL;
          v.hash[0] = '\0';
          st = q4gen_render(g, &SHAPES[s], ARCHS[a], &v);
          CHECK_MSG(st == Q4_OK && v.source && v.source[0], "render %s[%s] N=%d sm_%d: %s: %s", tn, v.params,
                    SHAPES[s].n, ARCHS[a], q4_status_name(st), q4_last_error());
          if (st) continue;
          /* act-order x: q4_decode gathers it in its own loads (XG < 3),
          ** every other family reads it gathered ahead by C.gather_x's kernel */
          if (SHAPES[s].flags & Q4_SHAPE_ACT_ORDER) {
            const int gathers = strstr(v.source, "q4tune_gather_x") != NULL;
            const int ahead = strcmp(tn, "q4_decode") || strstr(v.params, "XG=3");
            CHECK_MSG(gathers == ahead, "%s[%s] sm_%d: act-order source %s a gather kernel", tn, v.params, ARCHS[a],
                      gathers ? "has" : "lacks");
            if (ahead) {
              CHECK_MSG(is_twin_and_gather(g, &SHAPES[s], ARCHS[a], &v, &gather[s][a]),
                        "%s[%s] sm_%d: not its plain-order twin's source and the gather kernel", tn, v.params,
                        ARCHS[a]);
              if (twins++ % 10) {
                q4_variant_free(&v);
                continue;
              }
              twins_compiled++;
            }
          }
          if (njobs == cap) {
            cap *= 2;
            jobs = realloc(jobs, (size_t)cap * sizeof *jobs);
            memset(jobs + njobs, 0, (size_t)(cap - njobs) * sizeof *jobs);
          }
          job *j = &jobs[njobs++];
          j->v = v;
          j->tmpl = t;
          j->shape = s;
          j->arch_i = a;
        }
        q4gen_free_list(list, count);
      }
  }
  printf("rendered %d variant sources in %.1f s\n", njobs, now_s() - t_render);
  if (twins)
    printf("act-order variants that read x gathered ahead: %d, each its plain-order twin and the gather kernel; "
           "%d of them compiled\n", twins, twins_compiled);
  for (int s = 0; s < NSHAPES; s++)
    for (int a = 0; a < NARCHS; a++) free(gather[s][a]);

  const double t0 = now_s();
  const int nthreads = q4test_parallel(njobs, compile_job, NULL);
  const double wall = now_s() - t0;

  /* per template and arch */
  int total_fail = 0, total_spill = 0;
  double total_cpu = 0;
  printf("\n%-12s %-6s %9s %8s %8s %9s %9s %8s\n", "template", "arch", "variants", "failed", "spilling",
         "max_regs", "compile_s", "avg_ms");
  for (int t = 0; t < ntmpl && t < 64; t++)
    for (int a = 0; a < NARCHS; a++) {
      int n = 0, fail = 0, spill = 0, maxregs = 0, enumd = 0;
      double secs = 0;
      for (int s = 0; s < NSHAPES; s++) enumd += enumerated[t][s][a];
      for (int i = 0; i < njobs; i++) {
        job *j = &jobs[i];
        if (j->tmpl != t || j->arch_i != a) continue;
        n++;
        if (j->st != Q4_OK) {
          fail++;
          if (fail <= 3)
            fprintf(stderr, "FAILED %s[%s] N=%d g=%d sm_%d: %s: %.400s\n", j->v.tmpl, j->v.params,
                    SHAPES[j->shape].n, SHAPES[j->shape].group_size, ARCHS[a], q4_status_name(j->st), j->msg);
          CHECK_MSG(0, "%s[%s] failed to compile for sm_%d", j->v.tmpl, j->v.params, ARCHS[a]);
          continue;
        }
        CHECK_MSG(j->cubin_size > 0, "%s[%s] sm_%d: empty cubin", j->v.tmpl, j->v.params, ARCHS[a]);
        if (j->spill > 0) spill++;
        if (j->regs > maxregs) maxregs = j->regs;
        secs += j->ms / 1e3;
      }
      if (!enumd) continue;
      printf("%-12s sm_%-3d %9d %8d %8d %9d %9.1f %8.0f\n", q4gen_name(g, t), ARCHS[a], n, fail, spill, maxregs,
             secs, n - fail > 0 ? secs * 1e3 / (n - fail) : 0);
      total_fail += fail;
      total_spill += spill;
      total_cpu += secs;
    }
  printf("\ntotal: %d compiles, %d failed, %d spilling, %.1f s of compile time, %.1f s wall on %d threads\n",
         njobs, total_fail, total_spill, total_cpu, wall, nthreads);

  /* spills, listed for whoever tunes the templates */
  int shown = 0;
  for (int i = 0; i < njobs && shown < 20; i++)
    if (jobs[i].st == Q4_OK && jobs[i].spill > 0) {
      if (!shown++) printf("variants with spills (first 20):\n");
      printf("  %s[%s] N=%d g=%d sm_%d: %d bytes, %d regs\n", jobs[i].v.tmpl, jobs[i].v.params,
             SHAPES[jobs[i].shape].n, SHAPES[jobs[i].shape].group_size, ARCHS[jobs[i].arch_i], jobs[i].spill,
             jobs[i].regs);
    }

  free(jobs);
  q4gen_close(g);
  return q4test_done("test_kernels_compile");
}
