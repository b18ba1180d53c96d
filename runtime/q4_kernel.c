/*
** q4_kernel.c -- from rendered source to a loaded CUfunction: the handle's
** module list, then the database's cubin cache, then NVRTC.
*/
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_handle.h"
#include "q4_nvrtc.h"

void q4_kernel_cache(q4_handle *h, const char *hash, const q4_compiled *c, int smem) {
  if (q4db_cubin_put(h->db, hash, h->arch, h->info.nvrtc_version, c->cubin, c->size, c->regs, smem,
                     c->spill_bytes, c->compile_ms))
    q4_log(Q4_LOG_INFO, "cubin not cached, used as compiled: %s", q4_last_error());
}

/* Fetch the cubin of v from the database, or compile it and store it. */
static q4_status cubin_for(q4_handle *h, const q4_variant *v, void **cubin, size_t *size,
                           int *from_cache) {
  int found = 0;
  q4_status st = q4db_cubin_get(h->db, v->hash, h->arch, h->info.nvrtc_version, cubin, size, &found);
  if (st || found) {
    *from_cache = 1;
    return st;
  }
  q4_compiled c;
  st = q4_nvrtc_compile(v->source, v->tmpl, h->arch, &c);
  if (st) return q4_err_wrap(st, "compiling %s[%s]", v->tmpl, v->params);
  h->nvrtc_runs++;
  q4_log(Q4_LOG_DEBUG, "compiled %s[%s] in %.0f ms: %d registers, %d bytes spilled", v->tmpl, v->params,
         c.compile_ms, c.regs, c.spill_bytes);
  q4_kernel_cache(h, v->hash, &c, v->smem + c.smem_static);
  *cubin = c.cubin;
  *size = c.size;
  c.cubin = NULL;
  q4_compiled_free(&c);
  *from_cache = 0;
  return Q4_OK;
}

q4_status q4_kernel_precompile(q4_handle *h, const q4_variant *v) {
  pthread_mutex_lock(&h->lock);
  int found = 0;
  void *cubin = NULL;
  size_t size = 0;
  q4_status st = q4db_cubin_get(h->db, v->hash, h->arch, h->info.nvrtc_version, &cubin, &size, &found);
  pthread_mutex_unlock(&h->lock);
  free(cubin);
  if (st || found) return st;
  q4_compiled c;
  st = q4_nvrtc_compile(v->source, v->tmpl, h->arch, &c);
  if (st) return q4_err_wrap(st, "compiling %s[%s]", v->tmpl, v->params);
  pthread_mutex_lock(&h->lock);
  h->nvrtc_runs++;
  q4_kernel_cache(h, v->hash, &c, v->smem + c.smem_static);
  pthread_mutex_unlock(&h->lock);
  q4_compiled_free(&c);
  return Q4_OK;
}

q4_status q4_kernel_get(q4_handle *h, q4_variant *v, q4_kernel **out) {
  for (q4_kernel *k = h->kernels; k; k = k->next)
    if (!strcmp(k->v.hash, v->hash)) {
      *out = k;
      return Q4_OK;
    }
  void *cubin = NULL;
  size_t size = 0;
  q4_kernel *k = calloc(1, sizeof *k);
  if (!k) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  q4_status st = cubin_for(h, v, &cubin, &size, &k->from_cache);
  if (!st) st = q4_cuda_check(h->cu->ModuleLoadData(&k->module, cubin), "cuModuleLoadData");
  free(cubin);
  if (!st) st = q4_cuda_check(h->cu->ModuleGetFunction(&k->fn, k->module, v->chunk_n ? "q4tune_dequant" : "q4tune_kernel"), "cuModuleGetFunction");
  /* present only in sources for act-order weights whose kernel reads x in
  ** plain order (C.gather_x); looked up only there, since a failed lookup
  ** is a reported driver error */
  if (!st && v->source && strstr(v->source, "q4tune_gather_x"))
    st = q4_cuda_check(h->cu->ModuleGetFunction(&k->gather, k->module, "q4tune_gather_x"), "cuModuleGetFunction");
  /* opt in to all of it: static shared memory (a split-K ticket) comes on
  ** top, so exactly 48 KB of dynamic memory already needs the attribute */
  const int smem_max = q4_variant_smem(v, v->m_max);
  if (!st && smem_max > 0)
    st = q4_cuda_check(h->cu->FuncSetAttribute(k->fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem_max),
                       "raising the shared memory limit");
  if (!st) st = q4_cuda_check(h->cu->FuncGetAttribute(&k->regs, CU_FUNC_ATTRIBUTE_NUM_REGS, k->fn), "registers");
  if (!st) st = q4_cuda_check(h->cu->FuncGetAttribute(&k->spill_bytes, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, k->fn), "local memory");
  if (st) {
    if (k->module) h->cu->ModuleUnload(k->module);
    free(k);
    return q4_err_wrap(st, "loading %s[%s]", v->tmpl, v->params);
  }
  k->v = *v;
  k->v.source = NULL;  /* the source stays with the caller */
  k->next = h->kernels;
  h->kernels = k;
  *out = k;
  return Q4_OK;
}
