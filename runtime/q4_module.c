/*
** q4_module.c -- fixed CUDA sources compiled once per (source, arch, NVRTC
** version) and kept in the database's cubin cache, like the kernels.
*/
#include "q4_module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "q4_error.h"
#include "q4_nvrtc.h"

/* The cache key of a source: XXH3-128 in hex, as for rendered variants. */
static void source_hash(const char *source, char hash[Q4_HASH_MAX]) {
  XXH128_hash_t x = XXH3_128bits(source, strlen(source));
  snprintf(hash, Q4_HASH_MAX, "%016llx%016llx", (unsigned long long)x.high64, (unsigned long long)x.low64);
}

/* The cubin of `source` from the database, or compiled and stored there.
** NVRTC runs without the lock so other threads using the handle can go on. */
static q4_status cubin_of(q4_handle *h, const char *source, const char *name, void **cubin, size_t *size) {
  char hash[Q4_HASH_MAX];
  source_hash(source, hash);
  int found = 0;
  pthread_mutex_lock(&h->lock);
  q4_status st = q4db_cubin_get(h->db, hash, h->arch, h->info.nvrtc_version, cubin, size, &found);
  pthread_mutex_unlock(&h->lock);
  if (st || found) return st;
  q4_compiled c;
  if ((st = q4_nvrtc_compile(source, name, h->arch, &c))) return q4_err_wrap(st, "compiling %s", name);
  pthread_mutex_lock(&h->lock);
  h->nvrtc_runs++;
  q4_kernel_cache(h, hash, &c, c.smem_static);
  pthread_mutex_unlock(&h->lock);
  *cubin = c.cubin;
  *size = c.size;
  c.cubin = NULL;
  q4_compiled_free(&c);
  return Q4_OK;
}

q4_status q4_module_load(q4_handle *h, const char *source, const char *name, CUmodule *out) {
  if (!h || !source || !name || !out) return q4_err(Q4_ERR_INVALID_ARG, "q4_module_load: NULL argument");
  void *cubin = NULL;
  size_t size = 0;
  q4_status st = cubin_of(h, source, name, &cubin, &size);
  if (st) return st;
  CUmodule mod = NULL;
  char what[128];
  snprintf(what, sizeof what, "loading the %s module", name);
  st = q4_cuda_check(h->cu->ModuleLoadData(&mod, cubin), what);
  free(cubin);
  if (!st) *out = mod;
  return st;
}
