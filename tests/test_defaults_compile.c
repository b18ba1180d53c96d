/*
** test_defaults_compile.c -- the kernel q4_matmul runs untuned (the
** templates' default for a shape and M) compiles with NVRTC for sm_80,
** sm_86 and sm_90 without register spills, for every weight kind on a grid
** of real shapes and M values. The tuner rejects a variant that spills;
** nothing would reject a default that does, so this test does.
** No GPU needed. Two-pass defaults (q4_dqgemm) are left out: their
** expansion kernel does not depend on M.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_nvrtc.h"
#include "q4gen.h"
#include "q4test.h"
#include "q4test_pool.h"

/* {N, K, group size}: llama shapes, grouped and per-channel, a K that is
** no power of two, a small odd N, N = 256, which fills no GPU (every
** launch shape allowed), and K = 64, too short for the pipelined kernels.
** 8192 x 28672 act-order on sm_86 from M = 9 is q4_decode's XG = 2 (x
** gathered in the loop). */
static const int SHAPES[][3] = {{4096, 4096, 128},   {22016, 4096, 4096}, {4096, 11008, 128},
                                {12288, 4096, 64},   {5120, 13824, 13824}, {28672, 8192, 128},
                                {8192, 28672, 8192}, {1000, 4160, 4160},   {256, 4096, 128},
                                {4096, 64, 64}};
static const int MS[] = {1, 2, 3, 8, 9, 16, 17, 32, 33, 64, 65, 100, 256};
static const int ARCHS[] = {80, 86, 90};  /* 163, 99 and 227 KB of shared memory */
/* dense with every flag combination; q4s with and without zeros */
static const struct {
  q4_format format;
  int flags;
} KINDS[] = {{Q4_FORMAT_Q4, 0},
             {Q4_FORMAT_Q4, Q4_SHAPE_SYMMETRIC},
             {Q4_FORMAT_Q4, Q4_SHAPE_ACT_ORDER},
             {Q4_FORMAT_Q4, Q4_SHAPE_SYMMETRIC | Q4_SHAPE_ACT_ORDER},
             {Q4_FORMAT_Q4S, 0},
             {Q4_FORMAT_Q4S, Q4_SHAPE_SYMMETRIC}};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct job {
  q4_variant v;
  q4_shape s;
  int arch, m;
  q4_status st;
  char msg[256];
  int regs, spill;
} job;

static job *jobs;
static int njobs;

static void compile_job(int i, void *ctx) {
  (void)ctx;
  job *j = &jobs[i];
  q4_compiled c;
  j->st = q4_nvrtc_compile(j->v.source, "default.cu", j->arch, &c);
  if (j->st == Q4_OK) {
    j->regs = c.regs;
    j->spill = c.spill_bytes;
    q4_compiled_free(&c);
  } else {
    snprintf(j->msg, sizeof j->msg, "%s", q4_last_error());
  }
}

/* 1 if a job already holds this source for this arch */
static int seen(const char *hash, int arch) {
  for (int i = 0; i < njobs; i++)
    if (jobs[i].arch == arch && !strcmp(jobs[i].v.hash, hash)) return 1;
  return 0;
}

int main(void) {
  q4gen *g = NULL;
  CHECK_OK(q4gen_open(&g));
  if (!g) return q4test_done("test_defaults_compile");
  const int most = COUNT(ARCHS) * COUNT(SHAPES) * COUNT(KINDS) * COUNT(MS);
  jobs = calloc((size_t)most, sizeof *jobs);
  int asked = 0;
  for (int a = 0; a < COUNT(ARCHS); a++)
    for (int i = 0; i < COUNT(SHAPES); i++)
      for (int k = 0; k < COUNT(KINDS); k++)
        for (int mi = 0; mi < COUNT(MS); mi++) {
          const q4_shape s = {KINDS[k].format, SHAPES[i][0], SHAPES[i][1], SHAPES[i][2], KINDS[k].flags};
          job *j = &jobs[njobs];
          memset(j, 0, sizeof *j);
          asked++;
          q4_status st = q4gen_default(g, &s, ARCHS[a], MS[mi], &j->v);
          CHECK_MSG(st == Q4_OK, "no default for %s N=%d K=%d g=%d flags=%d sm_%d M=%d: %s", q4_format_name(s.format),
                    s.n, s.k, s.group_size, s.flags, ARCHS[a], MS[mi], q4_last_error());
          if (st) continue;
          if (j->v.chunk_n > 0 || seen(j->v.hash, ARCHS[a])) {
            q4_variant_free(&j->v);
            continue;
          }
          j->s = s;
          j->arch = ARCHS[a];
          j->m = MS[mi];
          njobs++;
        }
  q4gen_close(g);
  printf("%d (shape, kind, M, arch) defaults asked, %d distinct kernels to compile\n", asked, njobs);
  CHECK_MSG(njobs > 50, "only %d distinct defaults", njobs);

  const int nthreads = q4test_parallel(njobs, compile_job, NULL);

  int maxregs = 0;
  for (int i = 0; i < njobs; i++) {
    const job *j = &jobs[i];
    CHECK_MSG(j->st == Q4_OK, "%s[%s] sm_%d failed to compile: %.200s", j->v.tmpl, j->v.params, j->arch, j->msg);
    CHECK_MSG(j->st != Q4_OK || j->spill == 0,
              "default %s[%s] for %s N=%d K=%d g=%d flags=%d sm_%d M=%d spills %d bytes (%d registers)", j->v.tmpl,
              j->v.params, q4_format_name(j->s.format), j->s.n, j->s.k, j->s.group_size, j->s.flags, j->arch, j->m,
              j->spill, j->regs);
    if (j->regs > maxregs) maxregs = j->regs;
  }
  printf("compiled %d defaults on %d threads, at most %d registers\n", njobs, nthreads, maxregs);
  for (int i = 0; i < njobs; i++) q4_variant_free(&jobs[i].v);
  free(jobs);
  return q4test_done("test_defaults_compile");
}
