/*
** cli.c -- option parsing, model presets and the progress display.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "q4_error.h"
#include "q4_handle.h"

/* Every option cli_parse knows; a command takes those its usage names. */
static const char all_options[] =
    "--model --shape --m --group --format --db --device --threads --samples --seed --symmetric --act-order "
    "--early-launch --after-write --graph --force --json --csv";

const int cli_default_m[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
const int cli_default_m_count = (int)(sizeof cli_default_m / sizeof cli_default_m[0]);

/* The linear layers of common models, as (N, K): y = x[M][K] * W[K][N]. */
typedef struct preset {
  const char *name;
  int shapes[8][2];
  int count;
} preset;

static const preset presets[] = {
    /* q,k,v fused; o; gate,up fused; down */
    {"llama-7b", {{12288, 4096}, {4096, 4096}, {22016, 4096}, {4096, 11008}}, 4},
    {"llama-13b", {{15360, 5120}, {5120, 5120}, {27648, 5120}, {5120, 13824}}, 4},
    {"llama3-8b", {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}}, 4},
    {"llama3-70b", {{10240, 8192}, {8192, 8192}, {57344, 8192}, {8192, 28672}}, 4},
};

/* Shape N,K once (a second --shape or a model sharing a layer adds
** nothing); returns its index, or -1 past CLI_MAX_SHAPES distinct ones. */
static int add_shape(cli_opts *o, int n, int k) {
  for (int i = 0; i < o->nshapes; i++)
    if (o->shapes[i].n == n && o->shapes[i].k == k) return i;
  if (o->nshapes >= CLI_MAX_SHAPES) {
    fprintf(stderr, "q4tune: more than %d shapes\n", CLI_MAX_SHAPES);
    return -1;
  }
  q4_shape *s = &o->shapes[o->nshapes];
  s->n = n;
  s->k = k;
  return o->nshapes++;
}

static int add_preset(cli_opts *o, const char *name) {
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
    if (strcmp(presets[i].name, name)) continue;
    for (int j = 0; j < presets[i].count; j++) {
      const int at = add_shape(o, presets[i].shapes[j][0], presets[i].shapes[j][1]);
      if (at < 0) return -1;
      o->in_model[at] = 1;  /* a shape given by hand too counts as the model's */
    }
    o->model = presets[i].name;
    return 0;
  }
  fprintf(stderr, "q4tune: unknown model '%s'; known:", name);
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) fprintf(stderr, " %s", presets[i].name);
  fputc('\n', stderr);
  return -1;
}

/* A non-negative int up to 2^30: the digits from s up to `stop` (a ',' or
** the string's end), nothing else. */
static int parse_int_to(const char *s, char stop, int *out) {
  char *end;
  if (*s < '0' || *s > '9') return -1;  /* (strtol would take a sign or spaces) */
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end != stop || v > 1 << 30) return -1;
  *out = (int)v;
  return 0;
}

static int parse_int(const char *s, int *out) { return parse_int_to(s, 0, out); }

static int parse_seed(const char *s, unsigned long long *out) {
  char *end;
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  *out = strtoull(s, &end, 10);
  return errno || *end ? -1 : 0;
}

static int parse_shape(cli_opts *o, const char *arg) {
  const char *comma = strchr(arg, ',');
  int n, k;
  if (!comma || parse_int_to(arg, ',', &n) || parse_int(comma + 1, &k) || n <= 0 || k <= 0) {
    fprintf(stderr, "q4tune: --shape wants N,K (two positive integers), got '%s'\n", arg);
    return -1;
  }
  return add_shape(o, n, k) < 0 ? -1 : 0;
}

/* --m 1,16,2048: every comma-separated field a positive integer. */
static int parse_m(cli_opts *o, const char *arg) {
  o->nm = 0;
  for (const char *tok = arg;; tok++) {
    int m;
    const char *comma = strchr(tok, ',');
    if (parse_int_to(tok, comma ? ',' : 0, &m) || m < 1) {
      fprintf(stderr, "q4tune: --m wants a list of positive integers, got '%s'\n", arg);
      return -1;
    }
    if (o->nm >= CLI_MAX_M) {
      fprintf(stderr, "q4tune: --m takes at most %d values\n", CLI_MAX_M);
      return -1;
    }
    o->m[o->nm++] = m;
    if (!comma) return 0;
    tok = comma;
  }
}

/* Whether `usage` documents option `opt`: the command takes it. */
static int documented(const char *usage, const char *opt) {
  const size_t len = strlen(opt);
  for (const char *p = strstr(usage, opt); p; p = strstr(p + 1, opt)) {
    const char after = p[len];
    if (after != '-' && !(after >= 'a' && after <= 'z')) return 1;
  }
  return 0;
}

static int parse_format(cli_opts *o, const char *arg) {
  o->nformats = 0;
  if (!strcmp(arg, "q4") || !strcmp(arg, "all")) o->formats[o->nformats++] = Q4_FORMAT_Q4;
  if (!strcmp(arg, "q4s") || !strcmp(arg, "all")) o->formats[o->nformats++] = Q4_FORMAT_Q4S;
  if (!o->nformats) {
    fprintf(stderr, "q4tune: --format wants q4, q4s or all, got '%s'\n", arg);
    return -1;
  }
  return 0;
}

int cli_parse(int argc, char **argv, cli_opts *o, const char *usage, const char *default_model,
              const int *default_m, int default_m_count) {
  memset(o, 0, sizeof *o);
  o->samples = 25;
  o->seed = 20261124;
  int format_given = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = 0;
#define NEEDS_VALUE() \
  if (!v || !strncmp(v, "--", 2)) { fprintf(stderr, "q4tune %s: %s needs a value\n", argv[0], a); return -1; } \
  i++
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return 1;
    }
    /* The options every command shares, less those its usage leaves out:
    ** one the command would ignore is an error, not a silent no-op. */
    if (!strncmp(a, "--", 2) && a[2] && !documented(usage, a) && documented(all_options, a)) {
      fprintf(stderr, "q4tune %s: %s does not apply here (see q4tune %s --help)\n", argv[0], a, argv[0]);
      return -1;
    }
    if (!strcmp(a, "--model")) {
      NEEDS_VALUE();
      bad = add_preset(o, v);
    } else if (!strcmp(a, "--shape")) {
      NEEDS_VALUE();
      bad = parse_shape(o, v);
    } else if (!strcmp(a, "--m")) {
      NEEDS_VALUE();
      bad = parse_m(o, v);
    } else if (!strcmp(a, "--group")) {
      NEEDS_VALUE();
      bad = parse_int(v, &o->group_size);
      if (bad) fprintf(stderr, "q4tune: --group wants 0 (per-channel) or a group size, got '%s'\n", v);
    } else if (!strcmp(a, "--format")) {
      NEEDS_VALUE();
      bad = parse_format(o, v);
      format_given = 1;
    } else if (!strcmp(a, "--db")) {
      NEEDS_VALUE();
      o->db = v;
    } else if (!strcmp(a, "--device")) {
      NEEDS_VALUE();
      bad = parse_int(v, &o->device);
      if (bad) fprintf(stderr, "q4tune: --device wants a device number, got '%s'\n", v);
    } else if (!strcmp(a, "--threads")) {
      NEEDS_VALUE();
      bad = parse_int(v, &o->threads);
      if (bad) fprintf(stderr, "q4tune: --threads wants a number of compile threads (0: one per CPU), got '%s'\n", v);
    } else if (!strcmp(a, "--samples")) {
      NEEDS_VALUE();
      bad = parse_int(v, &o->samples) || o->samples < 20;
      if (bad) fprintf(stderr, "q4tune: --samples wants at least 20\n");
    } else if (!strcmp(a, "--seed")) {
      NEEDS_VALUE();
      bad = parse_seed(v, &o->seed);
      if (bad) fprintf(stderr, "q4tune: --seed wants a non-negative integer below 2^64, got '%s'\n", v);
    } else if (!strcmp(a, "--symmetric")) {
      o->flags |= Q4_SHAPE_SYMMETRIC;
    } else if (!strcmp(a, "--act-order")) {
      o->flags |= Q4_SHAPE_ACT_ORDER;
    } else if (!strcmp(a, "--early-launch")) {
      o->early_launch = 1;
    } else if (!strcmp(a, "--after-write")) {
      o->after_write = 1;
    } else if (!strcmp(a, "--graph")) {
      o->graph = 1;
    } else if (!strcmp(a, "--force")) {
      o->force = 1;
    } else if (!strcmp(a, "--json")) {
      o->json = 1;
    } else if (!strcmp(a, "--csv")) {
      o->csv = 1;
    } else {
      fprintf(stderr, "q4tune %s: unknown option '%s' (see q4tune %s --help)\n", argv[0], a, argv[0]);
      return -1;
    }
#undef NEEDS_VALUE
    if (bad) return -1;
  }
  if (!o->nshapes && default_model && add_preset(o, default_model)) return -1;
  /* A model's layers come in both formats, a shape given only by hand in
  ** dense q4, unless --format says otherwise (act-order weights are dense
  ** only): q4s is then left to the model's shapes in the expansion below. */
  if (!format_given) {
    o->formats[0] = Q4_FORMAT_Q4;
    o->nformats = 1;
    if (o->model && !(o->flags & Q4_SHAPE_ACT_ORDER)) o->formats[o->nformats++] = Q4_FORMAT_Q4S;
  } else if ((o->flags & Q4_SHAPE_ACT_ORDER) && o->formats[o->nformats - 1] == Q4_FORMAT_Q4S) {
    fprintf(stderr, "q4tune %s: --act-order weights are dense (q4) only; 16:32 sparse (q4s) ones have no row "
            "order\n", argv[0]);
    return -1;
  }
  if (!o->nm) {
    if (!default_m || default_m_count <= 0 || default_m_count > CLI_MAX_M) {
      default_m = cli_default_m;
      default_m_count = cli_default_m_count;
    }
    memcpy(o->m, default_m, sizeof(int) * (size_t)default_m_count);
    o->nm = default_m_count;
  }
  /* Shapes no weights can have (K not a multiple of the group size, ...)
  ** are refused here, before any command builds weights for them. */
  for (int i = 0; i < o->nshapes; i++)
    if (q4_shape_check(o->shapes[i].n, o->shapes[i].k, o->group_size)) {
      fprintf(stderr, "q4tune: shape %d,%d: %s\n", o->shapes[i].n, o->shapes[i].k, q4_last_error());
      return -1;
    }
  /* Each shape once per format (without --format, q4s for a model's shapes
  ** only), with the group size filled in. */
  const int base = o->nshapes;
  q4_shape all[2 * CLI_MAX_SHAPES];
  int n = 0;
  for (int f = 0; f < o->nformats; f++)
    for (int i = 0; i < base; i++) {
      if (!format_given && o->formats[f] == Q4_FORMAT_Q4S && !o->in_model[i]) continue;
      all[n] = o->shapes[i];
      all[n].format = o->formats[f];
      all[n].group_size = o->group_size ? o->group_size : all[n].k;
      all[n].flags = o->flags;
      n++;
    }
  memcpy(o->shapes, all, sizeof(q4_shape) * (size_t)n);
  o->nshapes = n;
  return 0;
}

int cli_fail(const char *what, int status) {
  fprintf(stderr, "q4tune: %s: %s: %s\n", what, q4_status_name((q4_status)status), q4_last_error());
  return 1;
}

void cli_shape_name(const q4_shape *s, char *buf, size_t size) {
  char group[24];
  if (s->group_size == s->k) snprintf(group, sizeof group, "per-channel");
  else snprintf(group, sizeof group, "g%d", s->group_size);
  snprintf(buf, size, "%s N=%d K=%d %s%s%s", q4_format_name(s->format), s->n, s->k, group,
           s->flags & Q4_SHAPE_SYMMETRIC ? " sym" : "", s->flags & Q4_SHAPE_ACT_ORDER ? " act-order" : "");
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *label) {
  p->tty = isatty(STDERR_FILENO);
  p->started = cli_now();
  p->label = label;
}

void cli_progress_update(cli_progress *p, int done, int total, const char *detail) {
  if (!p->tty || total <= 0) return;
  const double el = cli_now() - p->started;
  const double eta = done > 0 ? el * (total - done) / done : 0;
  const int width = 24, fill = done * width / total;
  char bar[32];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = 0;
  fprintf(stderr, "\r\033[K%s [%s] %d/%d ETA %d:%02d %.40s", p->label, bar, done, total, (int)eta / 60,
          (int)eta % 60, detail ? detail : "");
  fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
  if (p->tty) fputs("\r\033[K", stderr);
}
