/*
** cmd_import.c -- q4tune import: read GPTQ layers from safetensors files,
** list them and optionally write them in q4tune's layout. Needs no GPU.
*/
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "q4_safetensors.h"

static const char usage[] =
    "usage: q4tune import PATH [--layer PREFIX] [--v1 | --v2] [--out FILE]\n"
    "\n"
    "Import GPTQ 4-bit layers (PREFIX.qweight, .qzeros, .scales, .g_idx) from\n"
    "a safetensors file or from every *.safetensors file of a checkpoint\n"
    "folder, and print one line per layer: N, K, group size, act-order,\n"
    "symmetric. Act-order layers are reordered so groups are contiguous.\n"
    "\n"
    "  --layer PREFIX  only this layer (e.g. model.layers.0.mlp.down_proj)\n"
    "  --v1            classic gptq qzeros (zero - 1 stored)\n"
    "  --v2            gptq_v2 qzeros (the zero itself)\n"
    "                  default: checkpoint_format of quantize_config.json, else v1\n"
    "  --out FILE      write the layers in q4tune's layout to one safetensors\n"
    "                  file: PREFIX.qweight (I32 [K/8][N]), .scales and .zeros\n"
    "                  (F16 [G][N]) and, for act-order, .perm (I32 [K])\n";

typedef struct import_opts {
  const char *path, *layer, *out;
  q4_gptq_version version;
} import_opts;

typedef struct layer {
  char *file, *prefix;
  q4_host_matrix m;
} layer;

typedef struct layer_list {
  layer *v;
  int count, cap;
} layer_list;

static int parse_args(int argc, char **argv, import_opts *o) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
    if (!strcmp(a, "--v1") || !strcmp(a, "--v2")) {
      const q4_gptq_version v = a[3] == '1' ? Q4_GPTQ_V1 : Q4_GPTQ_V2;
      if (o->version && o->version != v) return fprintf(stderr, "q4tune import: choose one of --v1 and --v2\n"), -1;
      o->version = v;
    } else if ((!strcmp(a, "--layer") || !strcmp(a, "--out")) && i + 1 < argc) {
      *(a[2] == 'l' ? &o->layer : &o->out) = argv[++i];
    } else if (a[0] == '-' && a[1]) {
      return fprintf(stderr, "q4tune import: unknown option or missing value: %s\n", a), -1;
    } else if (o->path) {
      return fprintf(stderr, "q4tune import: one PATH only (got '%s' and '%s')\n", o->path, a), -1;
    } else {
      o->path = a;
    }
  }
  if (!o->path) return fprintf(stderr, "q4tune import: no PATH given\n\n%s", usage), -1;
  return 0;
}

/* Allocation for the command: out of memory ends it with a message. */
static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "q4tune import: out of memory\n");
    exit(1);
  }
  return q;
}

static char *xstrdup(const char *s) { return strcpy(xrealloc(NULL, strlen(s) + 1), s); }

static int ends_with(const char *s, const char *tail) {
  const size_t n = strlen(s), t = strlen(tail);
  return n >= t && !strcmp(s + n - t, tail);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* PATH itself, or its *.safetensors files sorted by name. */
static int list_files(const char *path, char ***files, int *count) {
  struct stat sb;
  *files = NULL;
  *count = 0;
  if (stat(path, &sb)) return fprintf(stderr, "q4tune import: cannot open %s\n", path), -1;
  if (!S_ISDIR(sb.st_mode)) {
    *files = xrealloc(NULL, sizeof **files);
    (*files)[0] = xstrdup(path);
    *count = 1;
    return 0;
  }
  DIR *d = opendir(path);
  if (!d) return fprintf(stderr, "q4tune import: cannot read the folder %s\n", path), -1;
  for (struct dirent *e; (e = readdir(d));) {
    if (!ends_with(e->d_name, ".safetensors")) continue;
    *files = xrealloc(*files, (size_t)(*count + 1) * sizeof **files);
    const size_t len = strlen(path) + strlen(e->d_name) + 2;
    char *f = xrealloc(NULL, len);
    snprintf(f, len, "%s/%s", path, e->d_name);
    (*files)[(*count)++] = f;
  }
  closedir(d);
  if (*count) qsort(*files, (size_t)*count, sizeof **files, cmp_str);
  else fprintf(stderr, "q4tune import: no *.safetensors file in %s\n", path);
  return *count ? 0 : -1;
}

static void add_layer(layer_list *l, const char *file, const char *name) {
  if (l->count == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
  }
  layer *y = &l->v[l->count++];
  memset(y, 0, sizeof *y);
  y->file = xstrdup(file);
  y->prefix = xstrdup(name);
  y->prefix[strlen(name) - strlen(".qweight")] = 0;
}

/* Every PREFIX with a PREFIX.qweight tensor (or only --layer). */
static int find_layers(char **files, int nfiles, const char *only, layer_list *l) {
  for (int i = 0; i < nfiles; i++) {
    q4_st_file *f;
    q4_status st = q4_st_open(files[i], &f);
    if (st) return cli_fail("reading a safetensors file", st);
    for (int t = 0; t < q4_st_count(f); t++) {
      const char *name = q4_st_name(f, t);
      if (!ends_with(name, ".qweight")) continue;
      if (only && (strncmp(name, only, strlen(only)) || strcmp(name + strlen(only), ".qweight"))) continue;
      add_layer(l, files[i], name);
    }
    q4_st_close(f);
  }
  return 0;
}

static void free_layers(layer_list *l) {
  for (int i = 0; i < l->count; i++) {
    free(l->v[i].file);
    free(l->v[i].prefix);
    q4_host_matrix_free(&l->v[i].m);
  }
  free(l->v);
}

static void print_layer(const layer *y, int width, int header) {
  if (header) printf("%-*s %6s %6s %5s %-9s %s\n", width, "layer", "N", "K", "group", "act-order", "symmetric");
  char g[16];
  if (y->m.group_size == y->m.k) snprintf(g, sizeof g, "chan");
  else snprintf(g, sizeof g, "%d", y->m.group_size);
  printf("%-*s %6d %6d %5s %-9s %s\n", width, y->prefix, y->m.n, y->m.k, g, y->m.perm ? "yes" : "no",
         y->m.symmetric ? "yes" : "no");
}

/* All layers' q4 tensors in one safetensors file. */
static int write_out(const char *out, const layer_list *l) {
  if (l->count <= 0) return 0;
  q4_st_tensor *t = calloc((size_t)l->count * 4, sizeof *t);
  char **names = calloc((size_t)l->count * 4, sizeof *names);
  if (!t || !names) {
    free(t);
    free(names);
    return fprintf(stderr, "q4tune import: out of memory\n"), 1;
  }
  int nt = 0;
  static const char *const suffix[] = {"qweight", "scales", "zeros", "perm"};
  for (int i = 0; i < l->count; i++) {
    const q4_host_matrix *m = &l->v[i].m;
    const int64_t g = m->k / m->group_size;
    const q4_st_tensor parts[4] = {
        {.dtype = Q4_ST_I32, .rank = 2, .shape = {m->k / 8, m->n}, .data = m->qweight},
        {.dtype = Q4_ST_F16, .rank = 2, .shape = {g, m->n}, .data = m->scales},
        {.dtype = Q4_ST_F16, .rank = 2, .shape = {g, m->n}, .data = m->zeros},
        {.dtype = Q4_ST_I32, .rank = 1, .shape = {m->k}, .data = m->perm}};
    for (int j = 0; j < (m->perm ? 4 : 3); j++) {
      const size_t len = strlen(l->v[i].prefix) + 16;
      names[nt] = xrealloc(NULL, len);
      snprintf(names[nt], len, "%s.%s", l->v[i].prefix, suffix[j]);
      t[nt] = parts[j];
      t[nt].name = names[nt];
      nt++;
    }
  }
  static const char *const meta[] = {"format", "q4tune", "layout", "q4 (docs/FORMATS.md)", NULL};
  q4_status st = q4_st_write(out, t, nt, meta);
  for (int i = 0; i < nt; i++) free(names[i]);
  free(names);
  free(t);
  if (st) return cli_fail("writing the output", st);
  printf("wrote %d layers to %s\n", l->count, out);
  return 0;
}

/* Before any layer is imported: --out must not be a file read (writing
** it would replace the checkpoint) nor a folder, and its folder must take
** a new file. */
static int check_out(const char *out, char **files, int nfiles) {
  struct stat so, si;
  if (!stat(out, &so)) {
    if (S_ISDIR(so.st_mode)) return fprintf(stderr, "q4tune import: --out %s is a folder\n", out), -1;
    for (int i = 0; i < nfiles; i++)
      if (!stat(files[i], &si) && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
        return fprintf(stderr, "q4tune import: --out %s is the input %s: give another file\n", out, files[i]), -1;
  }
  char *dir = xstrdup(out);
  char *slash = strrchr(dir, '/');
  if (slash) slash[slash == dir] = 0;  /* "/name": the root */
  const char *folder = slash ? dir : ".";
  const int ok = access(folder, W_OK | X_OK) == 0;
  if (!ok) fprintf(stderr, "q4tune import: cannot write --out %s into %s: %s\n", out, folder, strerror(errno));
  free(dir);
  return ok ? 0 : -1;
}

static int import_all(const import_opts *o, layer_list *l) {
  int width = 5;
  for (int i = 0; i < l->count; i++)
    if ((int)strlen(l->v[i].prefix) > width) width = (int)strlen(l->v[i].prefix);
  for (int i = 0; i < l->count; i++) {
    layer *y = &l->v[i];
    q4_status st = q4_gptq_import(y->file, y->prefix, o->version, &y->m);
    if (st) {
      fprintf(stderr, "q4tune import: layer %s in %s\n", y->prefix, y->file);
      return cli_fail("importing", st);
    }
    print_layer(y, width, i == 0);
    if (!o->out) q4_host_matrix_free(&y->m);  /* keep only what --out writes */
  }
  return o->out ? write_out(o->out, l) : 0;
}

int cmd_import(int argc, char **argv) {
  import_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc) {
    if (rc > 0) fputs(usage, stdout);
    return rc > 0 ? 0 : 2;
  }
  char **files;
  int nfiles;
  if (list_files(o.path, &files, &nfiles)) return 1;
  layer_list l = {0};
  rc = o.out && check_out(o.out, files, nfiles) ? 1 : 0;
  if (!rc) rc = find_layers(files, nfiles, o.layer, &l);
  if (!rc && !l.count) {
    if (o.layer) fprintf(stderr, "q4tune import: no layer '%s' (no %s.qweight) in %s\n", o.layer, o.layer, o.path);
    else fprintf(stderr, "q4tune import: no GPTQ layer (no *.qweight tensor) in %s\n", o.path);
    rc = 1;
  }
  if (!rc) rc = import_all(&o, &l);
  free_layers(&l);
  for (int i = 0; i < nfiles; i++) free(files[i]);
  free(files);
  return rc;
}
