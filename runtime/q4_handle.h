/*
** q4_handle.h -- the handle's insides (internal): the device, the database,
** the templates, loaded kernels and per-stream split-K workspaces. Every
** field below `lock` is guarded by it.
*/
#ifndef Q4_HANDLE_H
#define Q4_HANDLE_H

#include <pthread.h>
#include <stdint.h>

#include "q4_cublas.h"
#include "q4_cuda.h"
#include "q4_nvrtc.h"
#include "q4_types.h"
#include "q4db.h"
#include "q4gen.h"

/* A compiled, loaded kernel variant. */
typedef struct q4_kernel {
  q4_variant v;       /* launch fields; source freed once compiled */
  CUmodule module;
  CUfunction fn;
  CUfunction gather;  /* act-order weights, x gathered ahead of fn: q4tune_gather_x */
  int regs, spill_bytes;
  int from_cache;     /* 1 if the cubin came from the database */
  struct q4_kernel *next;
} q4_kernel;

/* The kernel chosen for one (shape, M bucket). */
typedef struct q4_plan {
  q4_shape shape;
  int m_bucket;
  int tuned;          /* 1: the database's winner; 0: a default */
  q4_kernel *kernel;
  struct q4_plan *next;
} q4_plan;

/* A buffer a workspace outgrew: kept until the stream is forgotten or the
** handle destroyed, since a CUDA graph captured before may still use it. */
typedef struct q4_retired {
  CUdeviceptr p;
  struct q4_retired *next;
} q4_retired;

/* Scratch of one stream: split-K fp32 partials and zeroed tile counters,
** the fp16 chunk of the two-pass variants and gathered act-order x. */
typedef struct q4_workspace {
  CUstream stream;
  CUdeviceptr partials, counters, chunk, xperm;
  size_t partial_bytes, counter_count, chunk_bytes, xperm_bytes;
  q4_retired *retired;
  struct q4_workspace *next;
} q4_workspace;

struct q4_handle {
  const q4_cuda_api *cu;
  CUdevice dev;
  CUcontext ctx;
  int ordinal, arch, sms;
  size_t l2_bytes;
  q4db_device info;
  int64_t device_id;
  pthread_mutex_t lock;
  q4db *db;
  q4gen *gen;
  q4_kernel *kernels;
  q4_plan *plans;
  q4_workspace *workspaces;
  q4_cublas *blas;    /* loaded on the first two-pass launch or default */
  char blas_missing[256];  /* why cuBLAS did not load, once it failed: two passes are then never chosen */
  int nvrtc_runs;     /* compilations this handle ran (0 on a warm start) */
  int early_launch;   /* q4_set_early_launch: single-pass kernels as programmatic dependents */
  CUmodule sparse_mod;      /* q4_sparse_gpu.c's kernels, loaded on first use */
  CUfunction sparse_fn[4];  /* its functions, in that file's order */
};

/* The M bucket m is tuned and looked up under: the next power of two,
** at most 4096. */
int q4_m_bucket(int m);

/* 1 if compute capability major.minor can run q4tune's kernels (>= 7.5). */
int q4_arch_supported(int cc_major, int cc_minor);

/* Push/pop the handle's context around driver calls. */
q4_status q4_ctx_push(q4_handle *h);
void q4_ctx_pop(q4_handle *h);

/* Compile (or fetch from the cubin cache) and load variant v, which must be
** rendered. Caller holds h->lock and the context. */
q4_status q4_kernel_get(q4_handle *h, q4_variant *v, q4_kernel **out);

/* Compile without loading (used by the tuner's compile threads): fills the
** cubin cache. Thread-safe apart from the database write, which takes the
** lock itself. */
q4_status q4_kernel_precompile(q4_handle *h, const q4_variant *v);

/* Keep a cubin just compiled from the source whose hash is `hash` in the
** database's cache (smem: the kernel's static and dynamic shared memory).
** A cache that cannot be written (locked past the busy timeout, a full
** disk) costs a later run a compile, not this one its kernel: that is
** logged, not returned. Caller holds h->lock. */
void q4_kernel_cache(q4_handle *h, const char *hash, const q4_compiled *c, int smem);

/* 1 if cuBLAS is loaded, loading it on the first call. If it does not
** load, the reason goes to h->blas_missing, the templates are told
** (q4gen_set_cublas) and it is not tried again: 0. Caller holds the lock
** and the context. */
int q4_blas_ready(q4_handle *h);

/* The templates' default for shape s at M bucket `bucket`, rendered. A
** default that needs cuBLAS (two passes) loads it first; where it does not
** load, the templates are asked again without it. Caller holds the lock
** and the context. */
q4_status q4_default_variant(q4_handle *h, const q4_shape *s, int bucket, q4_variant *v);

/* The kernel for (shape, m): tuned winner or default. Caller holds the lock
** and the context. */
q4_status q4_plan_get(q4_handle *h, const q4_shape *s, int m, q4_plan **out);

/* Enqueue kernel k for y = x * W with m rows on stream. Caller holds the
** lock and the context; arguments already validated. */
q4_status q4_launch(q4_handle *h, const q4_kernel *k, const q4_weights *w,
                    const void *x, void *y, int m, CUstream stream);

/* q4_workspace.c: the scratch of `stream`, grown to at least the bytes of
** partials, chunk and xperm and `counters` split-K counters (zero). A
** buffer it outgrows is kept until q4_forget_stream or q4_destroy. Growing
** while the stream is captured into a CUDA graph is Q4_ERR_UNSUPPORTED.
** Caller holds the lock and the context. */
q4_status q4_workspace_for(q4_handle *h, CUstream stream, size_t partials, size_t counters, size_t chunk,
                           size_t xperm, q4_workspace **out);
/* Free the scratch the handle keeps for `stream` (call before destroying
** a stream the handle has launched on). Takes the lock. */
void q4_forget_stream(q4_handle *h, CUstream stream);
/* Free a workspace's buffers, the retired ones too (the caller has
** synchronized), and the workspace. have_ctx 0: the context is gone, free
** host memory only. */
void q4_workspace_free(q4_handle *h, q4_workspace *w, int have_ctx);

/* The rules of every weight shape: N a multiple of 8, K of 32, the group
** size (0: per-channel) a multiple of 32 that divides K. */
q4_status q4_shape_check(int n, int k, int group_size);

/* The shape record of a weight descriptor (group size normalized). */
q4_shape q4_shape_of(const q4_weights *w);

/* 1 if the byte ranges [a, a + an) and [b, b + bn) share a byte. */
int q4_ranges_overlap(const void *a, size_t an, const void *b, size_t bn);

/* Check the arguments of a product: weights, pointers, m, alignment, and
** y over none of its inputs. */
q4_status q4_check_args(const q4_weights *w, const void *x, const void *y, int m);

#endif
