/*
** q4tune.c -- the q4tune command: tune, show, bench, check, devices, import,
** source.
*/
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: q4tune <command> [options]\n"
    "\n"
    "Autotuned int4-weight matrix products (y = x * W) for NVIDIA GPUs.\n"
    "\n"
    "commands:\n"
    "  tune      compile, verify and time every kernel variant; store the winners\n"
    "  show      print the tuned winners from the database (--json, --csv)\n"
    "  bench     time the chosen kernels next to cuBLAS fp16\n"
    "  check     verify the chosen kernels against a reference on random data\n"
    "  devices   list CUDA devices and whether q4tune can use them\n"
    "  import    read GPTQ layers from safetensors; list them, convert to q4 (--out)\n"
    "  source    print the CUDA source of a kernel: a default, or a variant by name\n"
    "\n"
    "Run 'q4tune <command> --help' for a command's options. The database is\n"
    "$Q4TUNE_DB, else $XDG_CACHE_HOME/q4tune/tuning.db (~/.cache/q4tune/tuning.db).\n";

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("q4tune %s\n", Q4TUNE_VERSION);
    return 0;
  }
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {{"tune", cmd_tune}, {"show", cmd_show}, {"bench", cmd_bench},
              {"check", cmd_check}, {"devices", cmd_devices}, {"import", cmd_import},
              {"source", cmd_source}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "q4tune: unknown command '%s'\n\n%s", argv[1], usage);
  return 2;
}
