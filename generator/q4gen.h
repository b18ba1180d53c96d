/*
** q4gen.h -- kernel templates: load, enumerate variants, render source.
**
** Templates are Lua files (templates/ *.lua, embedded into the library at
** build time; $Q4TUNE_TEMPLATE_DIR overrides them with files on disk). Each
** runs in a sandboxed Lua state with no io, os, package, debug, load or
** dofile. docs/TEMPLATES.md describes what a template file returns.
**
** A q4gen is not thread-safe: callers serialize access (the handle holds a
** mutex around it).
*/
#ifndef Q4GEN_H
#define Q4GEN_H

#include "q4_types.h"

typedef struct q4gen q4gen;

/* Load every template. */
q4_status q4gen_open(q4gen **out);
void q4gen_close(q4gen *g);

/* Whether cuBLAS can run here: the templates see it as s.cublas, and
** may offer defaults that need it (q4_dqgemm's) only while it is 1, as
** it is from q4gen_open. The runtime sets 0 once cuBLAS fails to load. */
void q4gen_set_cublas(q4gen *g, int available);

/* The GPU's streaming multiprocessors: the templates see them as s.sms,
** and may size a default or a grid to them. 132 (the H100's and H200's)
** from q4gen_open; the runtime sets the device's own. A count below 1 is
** taken as 1. */
void q4gen_set_sms(q4gen *g, int sms);

/* Templates in load order (sorted by name). */
int q4gen_count(const q4gen *g);
const char *q4gen_name(const q4gen *g, int i);
/* 1 if template i accepts weights of format f. */
int q4gen_supports(const q4gen *g, int i, q4_format f);

/* Every parameter combination of template `tmpl` that its check() accepts
** for this shape and arch (70, 75, 80, 86, 89, 90, ...). Fills the variant
** records except source/hash. *out is malloc'd: free with q4gen_free_list.
** A template that does not support the shape's format gives zero variants. */
q4_status q4gen_enumerate(q4gen *g, const char *tmpl, const q4_shape *s,
                          int arch, q4_variant **out, int *count);

/* Render v (tmpl and params set) for this shape and arch: fills source,
** hash and the launch fields. Fails with Q4_ERR_TEMPLATE if the template
** rejects the parameters for this shape. */
q4_status q4gen_render(q4gen *g, const q4_shape *s, int arch, q4_variant *v);

/* A sensible untuned choice for (shape, arch, m): asks the templates, in
** order of their `priority`, for default(shape, m) and renders the first
** answer that passes check(). Q4_ERR_UNSUPPORTED if none can take it. */
q4_status q4gen_default(q4gen *g, const q4_shape *s, int arch, int m,
                        q4_variant *v);

void q4_variant_free(q4_variant *v);          /* frees v->source only */
void q4gen_free_list(q4_variant *list, int count);

#endif
