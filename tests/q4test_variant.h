/*
** q4test_variant.h -- a variant named by hand, for the tests that render
** or store one: template and parameter string set, everything else zero.
*/
#ifndef Q4TEST_VARIANT_H
#define Q4TEST_VARIANT_H

#include <stdio.h>
#include <string.h>

#include "q4gen.h"

static inline q4_variant q4test_variant(const char *tmpl, const char *params) {
  q4_variant v;
  memset(&v, 0, sizeof v);
  snprintf(v.tmpl, sizeof v.tmpl, "%s", tmpl);
  snprintf(v.params, sizeof v.params, "%s", params);
  return v;
}

#endif
