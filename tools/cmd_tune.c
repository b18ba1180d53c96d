/*
** cmd_tune.c -- q4tune tune: tune a model's (or the given) shapes on one GPU.
*/
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "q4_tune.h"

static const char usage[] =
    "usage: q4tune tune [--model NAME | --shape N,K ...] [options]\n"
    "\n"
    "Compile every kernel variant for each weight shape (in parallel), verify\n"
    "each on fresh random data, time the ones that pass and store every\n"
    "measurement and the winner of each M bucket in the tuning database.\n"
    "What is already measured for this GPU and kernel source is skipped.\n"
    "\n"
    "  --model NAME     llama-7b (default), llama-13b, llama3-8b, llama3-70b\n"
    "  --shape N,K      a weight of K rows and N columns (y[M][N] = x[M][K] W); repeatable\n"
    "  --m LIST         M values, each tuned as its bucket (the next power of two)\n"
    "                   default 1,2,4,8,16,32,64,128,256,512,1024,2048,4096\n"
    "  --group G        quantization group size (default 0: per-channel)\n"
    "  --symmetric      weights whose zeros are all 8 (no zeros array is read)\n"
    "  --act-order      act-order weights: x gathered through a random permutation\n"
    "  --format F       q4, q4s (16:32 sparse) or all; default: both for a model's\n"
    "                   shapes, q4 for --shape\n"
    "  --db PATH        tuning database (default: $Q4TUNE_DB, else the cache path)\n"
    "  --device D       CUDA device number (default 0)\n"
    "  --threads T      compile threads (default: one per CPU)\n"
    "  --samples S      timed samples per measurement, at least 20 (default 25)\n"
    "  --force          measure again what the database already has\n"
    "  --seed S         seed of the random weights and activations each variant\n"
    "                   is verified on (default 20261124)\n";

typedef struct tune_ctx {
  cli_progress bar;
  int phase;  /* -1 before the first event */
  int m;
  int compiled, failed, measured, reused, rejected;
} tune_ctx;

static void on_event(void *ctx, const q4_tune_event *ev) {
  tune_ctx *t = ctx;
  char detail[Q4_NAME_MAX + Q4_PARAMS_MAX + 4];
  if (ev->phase == Q4_TUNE_COMPILE) {
    t->compiled++;
    t->failed += !ev->ok;
    snprintf(detail, sizeof detail, "%s[%s]", ev->variant->tmpl, ev->variant->params);
    if (t->phase != Q4_TUNE_COMPILE) cli_progress_start(&t->bar, "  compiling");
    cli_progress_update(&t->bar, ev->done, ev->total, detail);
    if (!ev->ok && !t->bar.tty) printf("  compile failed: %s: %s\n", detail, ev->note);
  } else if (ev->phase == Q4_TUNE_MEASURE) {
    if (t->phase != Q4_TUNE_MEASURE || t->m != ev->m) {
      static char label[32];
      snprintf(label, sizeof label, "  M=%-5d", ev->m);
      cli_progress_start(&t->bar, label);
    }
    t->m = ev->m;
    if (ev->skipped) t->reused++;
    else t->measured++;
    if (!ev->ok) {
      t->rejected++;
      if (!ev->skipped)
        printf("  M=%d rejected %s[%s]: %s\n", ev->m, ev->variant->tmpl, ev->variant->params, ev->note);
    }
    snprintf(detail, sizeof detail, "%s[%s]", ev->variant->tmpl, ev->variant->params);
    cli_progress_update(&t->bar, ev->done, ev->total, detail);
  } else {
    cli_progress_end(&t->bar);
    printf("  M=%-5d %9.2f us  %s[%s]\n", ev->m, ev->median_us, ev->variant->tmpl, ev->variant->params);
    fflush(stdout);
  }
  t->phase = (int)ev->phase;
}

int cmd_tune(int argc, char **argv) {
  cli_opts o;
  int rc = cli_parse(argc, argv, &o, usage, "llama-7b", NULL, 0);
  if (rc) return rc > 0 ? 0 : 2;
  q4_handle *h;
  q4_status st = q4_create(o.device, o.db, &h);
  if (st) return cli_fail("opening the GPU", st);
  printf("tuning %d shape(s) x %d M value(s) on %s (sm_%d, %d SMs), database %s\n", o.nshapes, o.nm, h->info.name,
         h->arch, h->sms, q4db_path(h->db));
  const double t0 = cli_now();
  tune_ctx t = {.phase = -1};
  for (int i = 0; i < o.nshapes && !st; i++) {
    char name[96];
    cli_shape_name(&o.shapes[i], name, sizeof name);
    printf("%s\n", name);
    fflush(stdout);
    q4_tune_options to = {.m = o.m, .m_count = o.nm, .threads = o.threads, .samples = o.samples,
                          .seed = o.seed + (unsigned)i, .force = o.force, .progress = on_event, .ctx = &t};
    t.phase = -1;
    st = q4_tune_shape(h, &o.shapes[i], &to);
    cli_progress_end(&t.bar);
  }
  const double secs = cli_now() - t0;
  if (!st)
    printf("done in %.1f s: %d variants compiled (%d failed), %d measured, %d reused from the database, "
           "%d rejected, %d NVRTC runs\n", secs, t.compiled, t.failed, t.measured, t.reused, t.rejected,
           h->nvrtc_runs);
  if (h->blas_missing[0]) printf("two-pass kernels (q4_dqgemm) left out: %s\n", h->blas_missing);
  q4_destroy(h);
  return st ? cli_fail("tuning", st) : 0;
}
