/*
** cmd_source.c -- q4tune source: the CUDA source of one kernel variant, the
** templates' default for a shape, M and architecture or a variant named as
** `show` and `bench` print them; with --cubin also compiled by NVRTC, to
** read its registers or disassemble it. Needs no GPU.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "q4_error.h"
#include "q4_handle.h"
#include "q4_nvrtc.h"

static const char usage[] =
    "usage: q4tune source --shape N,K --arch A [--m M | --variant 'TMPL[PARAMS]'] [options]\n"
    "\n"
    "Print the CUDA source of one kernel: the templates' untuned default for the\n"
    "shape, M and architecture (what q4_matmul runs where nothing is tuned), or\n"
    "the variant named as 'show' and 'bench' print it. Needs no GPU.\n"
    "\n"
    "  --shape N,K      the weight shape (one)\n"
    "  --arch A         compute capability as 80, 86, 89, 90, ...\n"
    "  --sms S          the GPU's streaming multiprocessors (default 132, as the\n"
    "                   H100 and H200; q4_matmul uses the device's own)\n"
    "  --m M            rows of x (one value; default 1): picks the default\n"
    "  --variant V      a variant instead of the default: q4_decode[WARPS_N=1,...]\n"
    "  --group G        group size (default 0: per-channel)\n"
    "  --symmetric      weights whose zeros are all 8\n"
    "  --act-order      act-order weights\n"
    "  --format F       q4 (default) or q4s\n"
    "  --cubin FILE     also compile it for sm_A with NVRTC and write the cubin;\n"
    "                   its registers and spills go to stderr\n";

/* source's own options, taken out of argv before the common ones are
** parsed: argv is compacted in place and *argc updated. -1 on a missing
** value. */
static int take_own_options(int *argc, char **argv, const char **arch, const char **sms, const char **variant,
                            const char **cubin) {
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    const char **slot = !strcmp(argv[i], "--arch") ? arch : !strcmp(argv[i], "--sms") ? sms
                        : !strcmp(argv[i], "--variant") ? variant : !strcmp(argv[i], "--cubin") ? cubin : NULL;
    if (!slot) {
      argv[out++] = argv[i];
      continue;
    }
    if (i + 1 >= *argc) {
      fprintf(stderr, "q4tune source: %s needs a value\n", argv[i]);
      return -1;
    }
    *slot = argv[++i];
  }
  *argc = out;
  return 0;
}

/* "TMPL[PARAMS]" into v's tmpl and params; 0 if it is not that. */
static int parse_variant(const char *s, q4_variant *v) {
  const char *open = strchr(s, '['), *close = strrchr(s, ']');
  if (!open || !close || close < open || close[1] || open == s) return 0;
  const int tl = (int)(open - s), pl = (int)(close - open - 1);
  if (tl >= (int)sizeof v->tmpl || pl >= (int)sizeof v->params) return 0;
  snprintf(v->tmpl, sizeof v->tmpl, "%.*s", tl, s);
  snprintf(v->params, sizeof v->params, "%.*s", pl, open + 1);
  return 1;
}

static int write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  const int ok = fwrite(data, 1, size, f) == size;
  return fclose(f) == 0 && ok;
}

int cmd_source(int argc, char **argv) {
  const char *arch_arg = NULL, *sms_arg = NULL, *variant = NULL, *cubin = NULL;
  if (take_own_options(&argc, argv, &arch_arg, &sms_arg, &variant, &cubin)) return 2;
  static const int one[] = {1};
  cli_opts o;
  int rc = cli_parse(argc, argv, &o, usage, NULL, one, 1);
  if (rc) return rc > 0 ? 0 : 2;
  char *end = NULL;
  const long arch = arch_arg ? strtol(arch_arg, &end, 10) : 0;
  if (!arch_arg || *end || arch < 75 || arch > 999) {
    fprintf(stderr, "q4tune source: --arch wants a compute capability of 75 or more, as 80 or 90%s%s%s\n",
            arch_arg ? " (got '" : "", arch_arg ? arch_arg : "", arch_arg ? "')" : "");
    return 2;
  }
  const long sms = sms_arg ? strtol(sms_arg, &end, 10) : 0;  /* 0: the generator's own default */
  if (sms_arg && (*end || sms < 1 || sms > 4096)) {
    fprintf(stderr, "q4tune source: --sms wants the GPU's multiprocessor count, 1 to 4096, as 108 or 132 (got '%s')\n",
            sms_arg);
    return 2;
  }
  if (o.nshapes != 1 || o.nm != 1) {
    fprintf(stderr, "q4tune source: one kernel at a time: give one --shape, one --format and one --m\n");
    return 2;
  }
  q4_shape s = o.shapes[0];  /* (cli_parse has checked it) */
  q4_status st;
  q4_variant v;
  memset(&v, 0, sizeof v);
  if (variant && !parse_variant(variant, &v)) {
    fprintf(stderr, "q4tune source: --variant wants TEMPLATE[PARAMS], as 'show' prints it, got '%s'\n", variant);
    return 2;
  }
  q4gen *g = NULL;
  if ((st = q4gen_open(&g))) return cli_fail("loading the templates", st);
  if (sms_arg) q4gen_set_sms(g, (int)sms);
  st = variant ? q4gen_render(g, &s, (int)arch, &v) : q4gen_default(g, &s, (int)arch, q4_m_bucket(o.m[0]), &v);
  q4gen_close(g);
  if (st) return cli_fail(variant ? "rendering the variant" : "the default kernel", st);
  char name[128];
  cli_shape_name(&s, name, sizeof name);
  if (variant) fprintf(stderr, "q4tune source: %s[%s], %s, sm_%ld\n", v.tmpl, v.params, name, arch);
  else fprintf(stderr, "q4tune source: %s[%s], the default for %s, M=%d, sm_%ld\n", v.tmpl, v.params, name, o.m[0], arch);
  fputs(v.source, stdout);
  rc = 0;
  if (cubin) {
    char file[Q4_NAME_MAX + 8];
    snprintf(file, sizeof file, "%s.cu", v.tmpl);
    q4_compiled c;
    if ((st = q4_nvrtc_compile(v.source, file, (int)arch, &c))) {
      rc = cli_fail("compiling", st);
    } else {
      if (!write_file(cubin, c.cubin, c.size)) {
        fprintf(stderr, "q4tune source: cannot write %s\n", cubin);
        rc = 1;
      } else {
        fprintf(stderr, "q4tune source: %d registers, %d bytes spilled; %zu bytes of cubin in %s\n", c.regs,
                c.spill_bytes, c.size, cubin);
      }
      q4_compiled_free(&c);
    }
  }
  q4_variant_free(&v);
  return rc;
}
