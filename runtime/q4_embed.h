/*
** q4_embed.h -- files compiled into the library (internal): the kernel
** templates (templates/ *.lua), the database schema (tuning_db/schema.sql)
** and the generator's own Lua half (generator/render.lua).
*/
#ifndef Q4_EMBED_H
#define Q4_EMBED_H

#include <stddef.h>

typedef struct q4_embedded_file {
  const char *name;  /* file name without directory, e.g. "q4_wmma.lua" */
  const char *data;  /* contents, NUL-terminated */
  size_t size;       /* bytes, without the NUL */
} q4_embedded_file;

extern const q4_embedded_file q4_templates[];  /* ends with a NULL name */
extern const int q4_templates_count;
extern const q4_embedded_file q4_schema[];
extern const int q4_schema_count;
extern const q4_embedded_file q4_genlua[];  /* generator/render.lua */
extern const int q4_genlua_count;

#endif
