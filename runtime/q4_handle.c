/*
** q4_handle.c -- opening a device: driver, context, database, templates.
*/
#include "q4_handle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_nvrtc.h"

int q4_m_bucket(int m) {
  int b = 1;
  while (b < m && b < 4096) b <<= 1;
  return b;
}

/* CUDA 13's NVRTC targets sm_75 and newer. */
int q4_arch_supported(int cc_major, int cc_minor) {
  return cc_major * 10 + cc_minor >= 75;
}

q4_status q4_ctx_push(q4_handle *h) {
  return q4_cuda_check(h->cu->CtxPushCurrent(h->ctx), "cuCtxPushCurrent");
}

void q4_ctx_pop(q4_handle *h) {
  CUcontext c;
  h->cu->CtxPopCurrent(&c);
}

static q4_status device_attr(q4_handle *h, CUdevice_attribute a, int *v, const char *what) {
  return q4_cuda_check(h->cu->DeviceGetAttribute(v, a, h->dev), what);
}

/* Device identity and limits. */
static q4_status query_device(q4_handle *h) {
  const q4_cuda_api *cu = h->cu;
  int count = 0;
  q4_status st = q4_cuda_check(cu->DeviceGetCount(&count), "cuDeviceGetCount");
  if (st) return st;
  if (h->ordinal >= count)
    return q4_err(Q4_ERR_NO_DEVICE, "no CUDA device %d: this machine has %d", h->ordinal, count);
  if ((st = q4_cuda_check(cu->DeviceGet(&h->dev, h->ordinal), "cuDeviceGet"))) return st;
  q4db_device *d = &h->info;
  if ((st = q4_cuda_check(cu->DeviceGetName(d->name, sizeof d->name, h->dev), "cuDeviceGetName")) ||
      (st = device_attr(h, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &d->cc_major, "compute capability")) ||
      (st = device_attr(h, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &d->cc_minor, "compute capability")) ||
      (st = device_attr(h, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &d->sms, "multiprocessor count")))
    return st;
  int l2 = 0;
  if ((st = device_attr(h, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, &l2, "L2 size"))) return st;
  h->l2_bytes = (size_t)l2;
  h->sms = d->sms;
  h->arch = d->cc_major * 10 + d->cc_minor;
  if (!q4_arch_supported(d->cc_major, d->cc_minor))
    return q4_err(Q4_ERR_DEVICE_TOO_OLD, "%s is sm_%d%d: q4tune needs compute capability 7.5 or newer",
                  d->name, d->cc_major, d->cc_minor);
  if ((st = q4_cuda_check(cu->DriverGetVersion(&d->driver_version), "cuDriverGetVersion"))) return st;
  int major = 0, minor = 0;
  if ((st = q4_nvrtc_version(&major, &minor))) return st;
  snprintf(d->nvrtc_version, sizeof d->nvrtc_version, "%d.%d", major, minor);
  return Q4_OK;
}

q4_status q4_create(int device, const char *db_path, q4_handle **out) {
  q4_err_clear();
  if (!out) return q4_err(Q4_ERR_INVALID_ARG, "q4_create: out is NULL");
  *out = NULL;
  if (device < 0) return q4_err(Q4_ERR_INVALID_ARG, "q4_create: device %d is negative", device);
  q4_handle *h = calloc(1, sizeof *h);
  if (!h) return q4_err(Q4_ERR_NO_MEMORY, "q4_create: out of memory");
  h->ordinal = device;
  pthread_mutex_init(&h->lock, NULL);
  q4_status st = q4_cuda_load(&h->cu);
  if (!st) st = query_device(h);
  if (!st) st = q4_cuda_check(h->cu->DevicePrimaryCtxRetain(&h->ctx, h->dev), "cuDevicePrimaryCtxRetain");
  if (!st) st = q4db_open(db_path, &h->db);
  if (!st) st = q4db_device_id(h->db, &h->info, &h->device_id);
  if (!st) st = q4gen_open(&h->gen);
  if (!st) q4gen_set_sms(h->gen, h->sms);
  if (st) {
    q4_destroy(h);
    return st;
  }
  q4_log(Q4_LOG_INFO, "device %d: %s (sm_%d, %d SMs), database %s", device, h->info.name, h->arch,
         h->sms, q4db_path(h->db));
  *out = h;
  return Q4_OK;
}

void q4_destroy(q4_handle *h) {
  if (!h) return;
  const int have_ctx = h->ctx && q4_ctx_push(h) == Q4_OK;
  if (have_ctx) h->cu->CtxSynchronize();
  for (q4_workspace *w = h->workspaces, *next; w; w = next) {
    next = w->next;
    q4_workspace_free(h, w, have_ctx);
  }
  for (q4_kernel *k = h->kernels, *next; k; k = next) {
    next = k->next;
    if (have_ctx && k->module) h->cu->ModuleUnload(k->module);
    q4_variant_free(&k->v);
    free(k);
  }
  for (q4_plan *p = h->plans, *next; p; p = next) {
    next = p->next;
    free(p);
  }
  if (have_ctx && h->sparse_mod) h->cu->ModuleUnload(h->sparse_mod);
  if (have_ctx) q4_cublas_close(h->blas);
  if (have_ctx) q4_ctx_pop(h);
  if (h->ctx) h->cu->DevicePrimaryCtxRelease(h->dev);
  q4gen_close(h->gen);
  q4db_close(h->db);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

q4_shape q4_shape_of(const q4_weights *w) {
  q4_shape s = {w->format, w->n, w->k, w->group_size > 0 ? w->group_size : w->k,
               (w->symmetric ? Q4_SHAPE_SYMMETRIC : 0) | (w->perm ? Q4_SHAPE_ACT_ORDER : 0)};
  return s;
}

q4_status q4_shape_check(int n, int k, int group_size) {
  if (n <= 0 || k <= 0) return q4_err(Q4_ERR_INVALID_ARG, "N and K must be positive (N=%d, K=%d)", n, k);
  if (n % 8) return q4_err(Q4_ERR_INVALID_ARG, "N=%d is not a multiple of 8", n);
  if (k % 32) return q4_err(Q4_ERR_INVALID_ARG, "K=%d is not a multiple of 32", k);
  if (group_size < 0) return q4_err(Q4_ERR_INVALID_ARG, "group size %d is negative", group_size);
  const int g = group_size ? group_size : k;
  if (g % 32) return q4_err(Q4_ERR_INVALID_ARG, "group size %d is not a multiple of 32", g);
  if (k % g) return q4_err(Q4_ERR_INVALID_ARG, "K=%d is not a multiple of the group size %d", k, g);
  return Q4_OK;
}

q4_status q4_weights_check(const q4_weights *w) {
  if (!w) return q4_err(Q4_ERR_INVALID_ARG, "weights descriptor is NULL");
  if (w->format != Q4_FORMAT_Q4 && w->format != Q4_FORMAT_Q4S)
    return q4_err(Q4_ERR_INVALID_ARG, "unknown weight format %d", (int)w->format);
  q4_status st = q4_shape_check(w->n, w->k, w->group_size);
  if (st) return st;
  if (w->symmetric != 0 && w->symmetric != 1)
    return q4_err(Q4_ERR_INVALID_ARG, "weights: symmetric must be 0 or 1, not %d", w->symmetric);
  if (!w->qweight || !w->scales || (!w->zeros && !w->symmetric))
    return q4_err(Q4_ERR_INVALID_ARG, "weights: qweight, scales and zeros must all be set (zeros may be NULL only for symmetric weights)");
  if ((uintptr_t)w->qweight % 16 || (uintptr_t)w->scales % 8 || (uintptr_t)w->zeros % 8)
    return q4_err(Q4_ERR_INVALID_ARG, "weights: qweight must be 16-byte aligned, scales and zeros 8-byte aligned");
  if ((uintptr_t)w->perm % 16)
    return q4_err(Q4_ERR_INVALID_ARG, "weights: perm must be 16-byte aligned");
  if (w->format == Q4_FORMAT_Q4S) {
    if (!w->mask) return q4_err(Q4_ERR_INVALID_ARG, "weights: sparse (q4s) weights need their mask");
    if ((uintptr_t)w->mask % 16) return q4_err(Q4_ERR_INVALID_ARG, "weights: mask must be 16-byte aligned");
    if (w->perm)
      return q4_err(Q4_ERR_UNSUPPORTED, "act-order (perm) is not available for sparse (q4s) weights");
  }
  return Q4_OK;
}

q4_status q4_check_args(const q4_weights *w, const void *x, const void *y, int m) {
  q4_status st = q4_weights_check(w);
  if (st) return st;
  if (!x || !y) return q4_err(Q4_ERR_INVALID_ARG, "x and y must be device pointers, not NULL");
  if (m <= 0) return q4_err(Q4_ERR_INVALID_ARG, "M=%d: must be at least 1", m);
  if ((uintptr_t)x % 16 || (uintptr_t)y % 16)
    return q4_err(Q4_ERR_INVALID_ARG, "x and y must be 16-byte aligned");
  /* The kernels read x and the weights while other blocks write y: y over
  ** any of them would be a wrong answer, not an error, without this. */
  const q4_shape s = q4_shape_of(w);
  const q4_array_bytes a = q4_shape_arrays(&s);
  const struct { const void *p; size_t bytes; const char *name; } in[] = {
      {x, (size_t)m * (size_t)w->k * 2, "x"},
      {w->qweight, a.qweight, "the weights' qweight"},
      {w->scales, a.scales, "the weights' scales"},
      {w->symmetric ? NULL : w->zeros, a.scales, "the weights' zeros"},
      {a.mask ? w->mask : NULL, a.mask, "the weights' mask"},
      {w->perm, a.perm, "the weights' perm"}};
  const size_t ybytes = (size_t)m * (size_t)w->n * 2;
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
    if (in[i].p && q4_ranges_overlap(y, ybytes, in[i].p, in[i].bytes))
      return q4_err(Q4_ERR_INVALID_ARG,
                    "y [%p, +%zu bytes) overlaps %s [%p, +%zu bytes): the product cannot be written over its inputs",
                    y, ybytes, in[i].name, in[i].p, in[i].bytes);
  return Q4_OK;
}

int q4_ranges_overlap(const void *a, size_t an, const void *b, size_t bn) {
  const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
  return an && bn && pa < pb + bn && pb < pa + an;
}
