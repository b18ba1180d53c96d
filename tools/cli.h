/*
** cli.h -- pieces shared by the q4tune subcommands.
*/
#ifndef Q4_CLI_H
#define Q4_CLI_H

#include <stdio.h>

#include "q4_types.h"

#define CLI_MAX_SHAPES 64
#define CLI_MAX_M 64

/* What most subcommands take: shapes, M values, database, device. */
typedef struct cli_opts {
  q4_shape shapes[2 * CLI_MAX_SHAPES];  /* up to CLI_MAX_SHAPES given, each in up to two formats */
  int nshapes;
  unsigned char in_model[CLI_MAX_SHAPES];  /* while parsing: shape i is a model preset's (q4s by default) */
  int m[CLI_MAX_M];
  int nm;
  const char *db;       /* NULL: default path */
  int device;
  int group_size;       /* 0: per-channel */
  int flags;            /* Q4_SHAPE_SYMMETRIC | Q4_SHAPE_ACT_ORDER for every shape */
  q4_format formats[2];
  int nformats;
  const char *model;    /* preset name, for messages */
  int json, csv;        /* show */
  int threads, samples, force;
  int early_launch;     /* bench, check: q4_set_early_launch(h, 1) */
  int after_write;      /* bench, check: each product after a kernel that writes x */
  int graph;            /* bench, check: products captured into a CUDA graph and replayed */
  unsigned long long seed;
} cli_opts;

/* The default M buckets. */
extern const int cli_default_m[];
extern const int cli_default_m_count;

/* Parse the options common to subcommands; argv[0] is the subcommand.
** `usage` is printed for --help (returns 1, caller exits 0); errors print a
** message and return -1; 0 on success. An option of the shared set that
** `usage` does not name is refused (the command would ignore it). A shape
** given twice counts once. Shapes default to the model preset
** `default_model` if none is given (NULL: none); M values to default_m
** (NULL: the tuning buckets cli_default_m) if --m is not given. Formats
** default to q4 and q4s for a model's shapes (q4 only with --act-order:
** sparse weights have none) and to q4 for a shape given only by --shape;
** --format gives every shape its format(s). The shapes come out expanded,
** format by format, each in the order given, group size and flags filled. */
int cli_parse(int argc, char **argv, cli_opts *o, const char *usage, const char *default_model,
              const int *default_m, int default_m_count);

/* Print a status and the library's message to stderr; returns 1. */
int cli_fail(const char *what, int status);

/* Human names: "q4 N=4096 K=4096 per-channel" */
void cli_shape_name(const q4_shape *s, char *buf, size_t size);

/* Progress: a bar on a terminal, plain lines otherwise. */
typedef struct cli_progress {
  int tty;
  double started;
  const char *label;
} cli_progress;
double cli_now(void);
void cli_progress_start(cli_progress *p, const char *label);
void cli_progress_update(cli_progress *p, int done, int total, const char *detail);
void cli_progress_end(cli_progress *p);

int cmd_tune(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_source(int argc, char **argv);

#endif
