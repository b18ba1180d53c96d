/*
** cmd_show.c -- q4tune show: the winners in the tuning database, as a
** table, JSON or CSV. Needs no GPU.
*/
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "q4db.h"

static const char usage[] =
    "usage: q4tune show [--db PATH] [--json | --csv]\n"
    "\n"
    "Print the tuned winner of every (device, format, N, K, group, M bucket):\n"
    "the kernel variant, its median time and the bandwidth it reached.\n"
    "\n"
    "  --db PATH   tuning database (default: $Q4TUNE_DB, else the cache path)\n"
    "  --json      one JSON array of objects\n"
    "  --csv       comma-separated, with a header line\n";

typedef struct show_ctx {
  const cli_opts *o;
  int rows;
} show_ctx;

/* A CSV field in double quotes, inner quotes doubled. */
static void csv_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"') putchar('"');
    putchar(*s);
  }
  putchar('"');
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

/* What a product must move at least over its time: the weights in their
** format (q4_shape_weight_bytes), x and y. */
static double gbs(const q4db_winner_row *r) {
  const double bytes = (double)q4_shape_weight_bytes(&r->shape) + 2.0 * r->m * r->shape.k + 2.0 * r->m * r->shape.n;
  return r->median_us > 0 ? bytes / r->median_us / 1e3 : 0;
}

/* "", "sym", "act" or "sym+act", as the best view writes them. */
static const char *weights(const q4db_winner_row *r) {
  static const char *names[] = {"", "sym", "act", "sym+act"};
  return names[r->shape.flags & 3];
}

static int print_row(void *ctx, const q4db_winner_row *r) {
  show_ctx *c = ctx;
  const int group = r->shape.group_size == r->shape.k ? 0 : r->shape.group_size;
  if (c->o->json) {
    printf("%s\n  {\"device\": ", c->rows ? "," : "[");
    json_string(r->device);
    printf(", \"cc\": \"%d.%d\", \"format\": \"%s\", \"n\": %d, \"k\": %d, \"group_size\": %d, \"m\": %d, "
           "\"template\": ", r->cc_major, r->cc_minor, q4_format_name(r->shape.format), r->shape.n, r->shape.k,
           group, r->m);
    json_string(r->tmpl);
    printf(", \"params\": ");
    json_string(r->params);
    printf(", \"median_us\": %.3f, \"gbs\": %.1f, \"regs\": %d, \"weights\": \"%s\"}", r->median_us, gbs(r),
           r->regs, weights(r));
  } else if (c->o->csv) {
    if (!c->rows) puts("device,cc,format,n,k,group_size,m,template,params,median_us,gbs,regs,weights");
    csv_string(r->device);
    printf(",%d.%d,%s,%d,%d,%d,%d,%s,", r->cc_major, r->cc_minor, q4_format_name(r->shape.format), r->shape.n,
           r->shape.k, group, r->m, r->tmpl);
    csv_string(r->params);
    printf(",%.3f,%.1f,%d,%s\n", r->median_us, gbs(r), r->regs, weights(r));
  } else {
    if (!c->rows)
      printf("%-24s %-4s %6s %6s %5s %-7s %5s %10s %8s  %s\n", "device", "fmt", "N", "K", "group", "weights", "M",
             "us", "GB/s", "kernel");
    char g[16];
    snprintf(g, sizeof g, group ? "%d" : "chan", group);
    printf("%-24.24s %-4s %6d %6d %5s %-7s %5d %10.2f %8.1f  %s[%s]\n", r->device, q4_format_name(r->shape.format),
           r->shape.n, r->shape.k, g, *weights(r) ? weights(r) : "-", r->m, r->median_us, gbs(r), r->tmpl,
           r->params);
  }
  c->rows++;
  return 0;
}

int cmd_show(int argc, char **argv) {
  cli_opts o;
  int rc = cli_parse(argc, argv, &o, usage, NULL, NULL, 0);
  if (rc) return rc > 0 ? 0 : 2;
  if (o.json && o.csv) {
    fprintf(stderr, "q4tune show: choose one of --json and --csv\n");
    return 2;
  }
  q4db *db;
  q4_status st = q4db_open(o.db, &db);
  if (st) return cli_fail("opening the tuning database", st);
  show_ctx c = {&o, 0};
  st = q4db_winners(db, NULL, print_row, &c);
  if (!st) {
    if (o.json) puts(c.rows ? "\n]" : "[]");
    else if (!c.rows && !o.csv) printf("no tuned kernels in %s yet: run 'q4tune tune'\n", q4db_path(db));
  }
  q4db_close(db);
  return st ? cli_fail("reading the tuning database", st) : 0;
}
