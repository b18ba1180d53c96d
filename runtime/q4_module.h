/*
** q4_module.h -- fixed CUDA sources (not templates) compiled for the
** handle's device through the database's cubin cache (internal).
*/
#ifndef Q4_MODULE_H
#define Q4_MODULE_H

#include "q4_handle.h"

/* Compile `source` for h->arch with NVRTC, or take its cubin from the
** database (keyed by the XXH3-128 of the source, the arch and the NVRTC
** version; a compiled cubin is stored there and counted in h->nvrtc_runs),
** then load it into *out. `name` names the program in NVRTC's messages.
** The caller holds the context (q4_ctx_push) but not h->lock, which this
** takes around each database access. On error *out is left unset. */
q4_status q4_module_load(q4_handle *h, const char *source, const char *name, CUmodule *out);

#endif
