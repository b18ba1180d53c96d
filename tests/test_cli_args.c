/*
** test_cli_args.c -- cli_parse (tools/cli.c): which shapes come out in
** which weight format, in what order, with group size and flags. Needs no
** GPU; the refused cases print their message to stderr.
*/
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "q4test.h"

/* The shared options as tune, bench and check document them. */
static const char usage[] =
    "usage: q4tune tune [--model NAME | --shape N,K ...] [options]\n"
    "  --model NAME  --shape N,K  --m LIST  --group G  --format F\n"
    "  --symmetric  --act-order  --db PATH\n";

/* cli_parse on argv `args` (NULL-terminated; args[0] the subcommand), as
** cmd_tune calls it: default model llama-7b, default M buckets. PARSE puts
** "tune" in front of its words. */
#define PARSE(o, ...) parse(o, (const char *[]){"tune", __VA_ARGS__, NULL})
static int parse(cli_opts *o, const char **args) {
  char *argv[2 * CLI_MAX_SHAPES + 16];
  int argc = 0;
  while (args[argc] && argc < (int)(sizeof argv / sizeof argv[0]) - 1) {
    argv[argc] = (char *)args[argc];
    argc++;
  }
  argv[argc] = NULL;
  return cli_parse(argc, argv, o, usage, "llama-7b", NULL, 0);
}

/* Whether entry i is format f, N,K and per-channel (group_size = k). */
static int is(const cli_opts *o, int i, q4_format f, int n, int k) {
  return i < o->nshapes && o->shapes[i].format == f && o->shapes[i].n == n && o->shapes[i].k == k &&
         o->shapes[i].group_size == k;
}

/* How many entries are format f. */
static int count(const cli_opts *o, q4_format f) {
  int c = 0;
  for (int i = 0; i < o->nshapes; i++) c += o->shapes[i].format == f;
  return c;
}

/* llama-7b's layers, in the preset's order. */
static const int llama[4][2] = {{12288, 4096}, {4096, 4096}, {22016, 4096}, {4096, 11008}};

/* The four llama-7b layers in format f from entry `from`. */
static int llama_at(const cli_opts *o, int from, q4_format f) {
  for (int j = 0; j < 4; j++)
    if (!is(o, from + j, f, llama[j][0], llama[j][1])) return 0;
  return 1;
}

static void test_model(void) {
  cli_opts o;
  CHECK(PARSE(&o, "--model", "llama-7b") == 0);
  CHECK(o.nshapes == 8);
  CHECK(llama_at(&o, 0, Q4_FORMAT_Q4));
  CHECK(llama_at(&o, 4, Q4_FORMAT_Q4S));
  CHECK(o.model && !strcmp(o.model, "llama-7b"));
  CHECK(o.nm == cli_default_m_count && o.m[0] == cli_default_m[0]);
  CHECK(o.flags == 0);

  /* no shape at all: the default model, both formats */
  CHECK(PARSE(&o, "--m", "1,16") == 0);
  CHECK(o.nshapes == 8 && llama_at(&o, 0, Q4_FORMAT_Q4) && llama_at(&o, 4, Q4_FORMAT_Q4S));
  CHECK(o.nm == 2 && o.m[0] == 1 && o.m[1] == 16);
}

static void test_hand_shape(void) {
  cli_opts o;
  CHECK(PARSE(&o, "--shape", "8192,8192") == 0);
  CHECK(o.nshapes == 1);
  CHECK(is(&o, 0, Q4_FORMAT_Q4, 8192, 8192));
  CHECK(o.model == NULL);

  /* the same shape twice counts once */
  CHECK(PARSE(&o, "--shape", "8192,8192", "--shape", "8192,8192") == 0);
  CHECK(o.nshapes == 1 && is(&o, 0, Q4_FORMAT_Q4, 8192, 8192));
}

static void test_model_and_hand_shape(void) {
  cli_opts o;
  /* the model's four in both formats, the hand shape in q4 only */
  CHECK(PARSE(&o, "--model", "llama-7b", "--shape", "8192,8192") == 0);
  CHECK(o.nshapes == 9);
  CHECK(count(&o, Q4_FORMAT_Q4) == 5 && count(&o, Q4_FORMAT_Q4S) == 4);
  CHECK(llama_at(&o, 0, Q4_FORMAT_Q4));
  CHECK(is(&o, 4, Q4_FORMAT_Q4, 8192, 8192));
  CHECK(llama_at(&o, 5, Q4_FORMAT_Q4S));

  /* the hand shape first: the order given is kept */
  CHECK(PARSE(&o, "--shape", "8192,8192", "--model", "llama-7b") == 0);
  CHECK(o.nshapes == 9);
  CHECK(is(&o, 0, Q4_FORMAT_Q4, 8192, 8192));
  CHECK(llama_at(&o, 1, Q4_FORMAT_Q4));
  CHECK(llama_at(&o, 5, Q4_FORMAT_Q4S));

  /* a hand shape that is also the model's counts as the model's */
  CHECK(PARSE(&o, "--shape", "4096,4096", "--model", "llama-7b") == 0);
  CHECK(o.nshapes == 8);
  CHECK(is(&o, 0, Q4_FORMAT_Q4, 4096, 4096) && is(&o, 4, Q4_FORMAT_Q4S, 4096, 4096));
  CHECK(count(&o, Q4_FORMAT_Q4) == 4 && count(&o, Q4_FORMAT_Q4S) == 4);
  CHECK(is(&o, 1, Q4_FORMAT_Q4, 12288, 4096) && is(&o, 5, Q4_FORMAT_Q4S, 12288, 4096));
  CHECK(is(&o, 3, Q4_FORMAT_Q4, 4096, 11008) && is(&o, 7, Q4_FORMAT_Q4S, 4096, 11008));

  /* and the other way round */
  CHECK(PARSE(&o, "--model", "llama-7b", "--shape", "4096,4096") == 0);
  CHECK(o.nshapes == 8 && llama_at(&o, 0, Q4_FORMAT_Q4) && llama_at(&o, 4, Q4_FORMAT_Q4S));
}

static void test_format_given(void) {
  cli_opts o;
  CHECK(PARSE(&o, "--model", "llama-7b", "--shape", "8192,8192", "--format", "q4s") == 0);
  CHECK(o.nshapes == 5 && count(&o, Q4_FORMAT_Q4S) == 5);
  CHECK(llama_at(&o, 0, Q4_FORMAT_Q4S) && is(&o, 4, Q4_FORMAT_Q4S, 8192, 8192));

  CHECK(PARSE(&o, "--model", "llama-7b", "--shape", "8192,8192", "--format", "all") == 0);
  CHECK(o.nshapes == 10 && count(&o, Q4_FORMAT_Q4) == 5 && count(&o, Q4_FORMAT_Q4S) == 5);
  CHECK(llama_at(&o, 0, Q4_FORMAT_Q4) && is(&o, 4, Q4_FORMAT_Q4, 8192, 8192));
  CHECK(llama_at(&o, 5, Q4_FORMAT_Q4S) && is(&o, 9, Q4_FORMAT_Q4S, 8192, 8192));

  CHECK(PARSE(&o, "--model", "llama-7b", "--format", "q4") == 0);
  CHECK(o.nshapes == 4 && llama_at(&o, 0, Q4_FORMAT_Q4));

  CHECK(PARSE(&o, "--shape", "8192,8192", "--format", "q4s") == 0);
  CHECK(o.nshapes == 1 && is(&o, 0, Q4_FORMAT_Q4S, 8192, 8192));

  CHECK(PARSE(&o, "--shape", "8192,8192", "--format", "q8") == -1);
}

static void test_act_order(void) {
  cli_opts o;
  CHECK(PARSE(&o, "--model", "llama-7b", "--act-order") == 0);
  CHECK(o.nshapes == 4 && llama_at(&o, 0, Q4_FORMAT_Q4));
  for (int i = 0; i < o.nshapes; i++) CHECK(o.shapes[i].flags == Q4_SHAPE_ACT_ORDER);

  CHECK(PARSE(&o, "--act-order", "--shape", "4096,4096", "--model", "llama-7b") == 0);
  CHECK(o.nshapes == 4 && count(&o, Q4_FORMAT_Q4S) == 0);

  CHECK(PARSE(&o, "--act-order", "--format", "q4s", "--shape", "4096,4096") == -1);
  CHECK(PARSE(&o, "--act-order", "--format", "all", "--model", "llama-7b") == -1);
}

static void test_group_and_flags(void) {
  cli_opts o;
  CHECK(PARSE(&o, "--model", "llama-7b", "--shape", "8192,8192", "--group", "128", "--symmetric") == 0);
  CHECK(o.nshapes == 9 && o.group_size == 128);
  for (int i = 0; i < o.nshapes; i++) {
    CHECK(o.shapes[i].group_size == 128);
    CHECK(o.shapes[i].flags == Q4_SHAPE_SYMMETRIC);
  }

  /* per-channel: group_size is each shape's K */
  CHECK(PARSE(&o, "--shape", "4096,11008", "--shape", "8192,8192", "--format", "all") == 0);
  CHECK(o.nshapes == 4 && o.group_size == 0);
  CHECK(is(&o, 0, Q4_FORMAT_Q4, 4096, 11008) && o.shapes[0].group_size == 11008);
  CHECK(is(&o, 1, Q4_FORMAT_Q4, 8192, 8192) && o.shapes[1].group_size == 8192);
  CHECK(is(&o, 2, Q4_FORMAT_Q4S, 4096, 11008) && is(&o, 3, Q4_FORMAT_Q4S, 8192, 8192));
  for (int i = 0; i < o.nshapes; i++) CHECK(o.shapes[i].flags == 0);

  CHECK(PARSE(&o, "--symmetric", "--act-order", "--shape", "8192,8192") == 0);
  CHECK(o.nshapes == 1 && o.shapes[0].flags == (Q4_SHAPE_SYMMETRIC | Q4_SHAPE_ACT_ORDER));
}

static void test_refused(void) {
  cli_opts o;
  CHECK(PARSE(&o, "--model", "llama-1b") == -1);
  CHECK(PARSE(&o, "--shape", "4096") == -1);
  CHECK(PARSE(&o, "--threads", "4") == -1);  /* not in this usage */
  CHECK(PARSE(&o, "--shape", "4096,4100", "--group", "128") == -1);
}

/* CLI_MAX_SHAPES distinct shapes, a model's four among them: the expanded
** list fills the array without --format and with --format all; one more
** shape is refused. */
static void test_most_shapes(void) {
  enum { HAND = CLI_MAX_SHAPES - 4 };
  static char text[HAND + 1][24];
  const char *args[2 * HAND + 9];
  cli_opts o;
  int a = 0;
  args[a++] = "tune";
  args[a++] = "--model";
  args[a++] = "llama-7b";
  for (int j = 0; j <= HAND; j++)  /* N from 32768: none of llama-7b's */
    snprintf(text[j], sizeof text[j], "%d,4096", 1024 * (j + 32));
  for (int j = 0; j < HAND; j++) {
    args[a++] = "--shape";
    args[a++] = text[j];
  }
  args[a] = NULL;
  CHECK(parse(&o, args) == 0);
  CHECK(o.nshapes == CLI_MAX_SHAPES + 4);
  CHECK(count(&o, Q4_FORMAT_Q4) == CLI_MAX_SHAPES && llama_at(&o, 0, Q4_FORMAT_Q4));
  CHECK(is(&o, CLI_MAX_SHAPES - 1, Q4_FORMAT_Q4, 1024 * (HAND + 31), 4096));
  CHECK(llama_at(&o, CLI_MAX_SHAPES, Q4_FORMAT_Q4S));
  args[a] = "--format";
  args[a + 1] = "all";
  args[a + 2] = NULL;
  CHECK(parse(&o, args) == 0);
  CHECK(o.nshapes == 2 * CLI_MAX_SHAPES && count(&o, Q4_FORMAT_Q4S) == CLI_MAX_SHAPES);
  args[a + 2] = "--shape";
  args[a + 3] = text[HAND];
  args[a + 4] = NULL;
  CHECK(parse(&o, args) == -1);
}

int main(void) {
  test_model();
  test_hand_shape();
  test_model_and_hand_shape();
  test_format_given();
  test_act_order();
  test_group_and_flags();
  test_refused();
  test_most_shapes();
  return q4test_done("test_cli_args");
}
