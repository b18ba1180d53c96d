/*
** cmd_check.c -- q4tune check: run the kernels q4_matmul picks (tuned or
** default) and the templates' defaults on fresh random data and compare
** with the reference.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "q4_bed.h"
#include "q4_error.h"

static const char usage[] =
    "usage: q4tune check [--model NAME | --shape N,K ...] [--m LIST] [--group G] [options]\n"
    "\n"
    "For each shape and M, run y = x * W through q4_matmul (the tuned kernel, or\n"
    "the default for an untuned shape) and through the default kernel, on fresh\n"
    "random weights and activations with y poisoned, and compare with an fp32\n"
    "reference (itself checked against a double-precision host product).\n"
    "A tuned shape that has no default kernel (README's limits) says so.\n"
    "Fails (exit 1) if any kernel leaves an element unwritten or exceeds the\n"
    "relative error bound 2e-3.\n"
    "\n"
    "  --model NAME   shapes of a model preset (default llama-7b)\n"
    "  --shape N,K    a weight shape; repeatable\n"
    "  --m LIST       default 1,2,3,7,16,17,64,100,255,1024,2048\n"
    "  --group G      group size (default 0: per-channel)\n"
    "  --symmetric    weights whose zeros are all 8 (no zeros array is read)\n"
    "  --act-order    act-order weights: x gathered through a random permutation\n"
    "  --format F     q4, q4s (16:32 sparse) or all; default: both for a model's\n"
    "                 shapes, q4 for --shape\n"
    "  --after-write  run each product right after a kernel that writes its x (one\n"
    "                 block a row, as a normalization would), x NaN until it has\n"
    "                 run: a product that reads x too early fails\n"
    "  --early-launch launch the products early, as programmatic dependents of\n"
    "                 the kernel before (sm_90+; q4_set_early_launch)\n"
    "  --graph        capture each product into a CUDA graph and check its replay\n"
    "  --db PATH, --device D, --seed S\n";

static q4_status run_matmul(void *ctx, q4_bed *b, const q4_weights *w, CUstream s) {
  return q4_matmul((q4_handle *)ctx, w, (const void *)b->x, (void *)b->y, b->m, s);
}

/* The default variant for (shape, m), loaded. */
static q4_status default_kernel(q4_handle *h, const q4_shape *s, int m, q4_kernel **k) {
  q4_variant v;
  memset(&v, 0, sizeof v);
  pthread_mutex_lock(&h->lock);
  q4_status st = q4_ctx_push(h);
  if (!st) {
    st = q4_default_variant(h, s, q4_m_bucket(m), &v);
    if (!st) st = q4_kernel_get(h, &v, k);
    q4_ctx_pop(h);
  }
  pthread_mutex_unlock(&h->lock);
  q4_variant_free(&v);
  return st;
}

int cmd_check(int argc, char **argv) {
  cli_opts o;
  static const int default_m[] = {1, 2, 3, 7, 16, 17, 64, 100, 255, 1024, 2048};
  int rc = cli_parse(argc, argv, &o, usage, "llama-7b", default_m, (int)(sizeof default_m / sizeof default_m[0]));
  if (rc) return rc > 0 ? 0 : 2;
  q4_handle *h;
  q4_status st = q4_create(o.device, o.db, &h);
  if (st) return cli_fail("opening the GPU", st);
  if (o.early_launch && (st = q4_set_early_launch(h, 1))) {
    q4_destroy(h);
    return cli_fail("--early-launch", st);
  }
  int pass = 0, fail = 0;
  printf("%-34s %5s  %-7s %-9s %s\n", "shape", "M", "kernel", "rel.err", "variant");
  for (int i = 0; i < o.nshapes && !st; i++) {
    char name[96];
    cli_shape_name(&o.shapes[i], name, sizeof name);
    q4_bed bed;
    if ((st = q4_bed_open(&bed, h, &o.shapes[i], o.seed + (unsigned)i, 1))) break;
    bed.after_write = o.after_write;
    bed.graph = o.graph;
    for (int j = 0; j < o.nm && !st; j++) {
      if ((st = q4_bed_set_m(&bed, o.m[j], o.seed ^ (unsigned)(31 * j + i)))) break;
      int tuned = 0;  /* q4_matmul ran a tuned winner (which = 0) */
      for (int which = 0; which < 2 && !st; which++) {
        char kname[Q4_NAME_MAX + Q4_PARAMS_MAX + 2];
        double err = INFINITY;
        if (which == 0) {
          st = q4_kernel_name(h, &bed.w[0], o.m[j], kname, sizeof kname, &tuned);
          if (!st) st = q4_bed_verify(&bed, run_matmul, h, &err);
        } else {
          q4_kernel *k;
          st = default_kernel(h, &o.shapes[i], o.m[j], &k);
          if (st == Q4_ERR_UNSUPPORTED && tuned) {
            /* a shape only tuning serves (README's limits): nothing to check */
            printf("%-34s %5d  %-7s %-9s none: %s\n", name, o.m[j], "default", "-", q4_last_error());
            st = Q4_OK;
            continue;
          }
          if (!st) {
            snprintf(kname, sizeof kname, "%s[%s]", k->v.tmpl, k->v.params);
            st = q4_bed_verify(&bed, q4_bed_run_kernel, k, &err);
          }
        }
        if (st) break;
        const int ok = err <= Q4_REL_ERROR_MAX;
        ok ? pass++ : fail++;
        printf("%-34s %5d  %-7s %-9.2e %s%s\n", name, o.m[j], which ? "default" : tuned ? "tuned" : "untuned",
               err, kname, ok ? "" : "  FAIL");
      }
      fflush(stdout);
    }
    q4_bed_close(&bed);
  }
  q4_destroy(h);
  if (st) return cli_fail("checking", st);
  printf("check: %d passed, %d failed\n", pass, fail);
  return fail ? 1 : 0;
}
