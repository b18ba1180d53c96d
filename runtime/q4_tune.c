/*
** q4_tune.c -- tuning one weight shape: compile, verify, time, choose.
*/
#include "q4_tune.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "q4_bed.h"
#include "q4_error.h"

typedef struct candidate {
  q4_variant v;
  int64_t id;
  int todo;               /* some bucket still lacks a measurement */
  q4_status compile_st;
  char compile_msg[256];
} candidate;

typedef struct tune_run {
  q4_handle *h;
  const q4_shape *s;
  const q4_tune_options *o;
  int buckets[32], nb;
  candidate *c;
  int nc;
  int todo;               /* candidates to compile and measure */
  atomic_int next_compile, compiled;
} tune_run;

static void emit(const tune_run *r, q4_tune_event *ev) {
  ev->shape = r->s;
  if (r->o->progress) r->o->progress(r->o->ctx, ev);
}

static int in_range(const q4_variant *v, int m) { return v->m_min <= m && m <= v->m_max; }

/* Every variant of every template that some bucket will try, rendered. */
static q4_status collect(tune_run *r) {
  q4_handle *h = r->h;
  q4_status st = Q4_OK;
  int blas = -1; /* whether two-pass variants can run: asked at the first one */
  pthread_mutex_lock(&h->lock);
  for (int t = 0; !st && t < q4gen_count(h->gen); t++) {
    if (!q4gen_supports(h->gen, t, r->s->format)) continue;
    q4_variant *list = NULL;
    int n = 0;
    if ((st = q4gen_enumerate(h->gen, q4gen_name(h->gen, t), r->s, h->arch, &list, &n))) break;
    candidate *grown = realloc(r->c, (size_t)(r->nc + n) * sizeof *grown);
    if (!grown) {
      q4gen_free_list(list, n);
      st = q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
      break;
    }
    r->c = grown;
    for (int i = 0; i < n; i++) {
      int used = 0;
      for (int b = 0; b < r->nb; b++) used |= in_range(&list[i], r->buckets[b]);
      if (used && list[i].chunk_n && blas < 0) {
        blas = 0;
        if (q4_ctx_push(h) == Q4_OK) {
          blas = q4_blas_ready(h);
          q4_ctx_pop(h);
        }
      }
      if (!used || (list[i].chunk_n && !blas)) { /* (cmd_tune says why two-pass ones are missing) */
        q4_variant_free(&list[i]);
        continue;
      }
      candidate *c = &r->c[r->nc++];
      memset(c, 0, sizeof *c);
      c->v = list[i];
      if (!st) st = q4gen_render(h->gen, r->s, h->arch, &c->v);
      if (!st) st = q4db_variant_id(h->db, &c->v, &c->id);
    }
    free(list);  /* the variants now belong to r->c */
  }
  pthread_mutex_unlock(&h->lock);
  return st;
}

/* Screening: every candidate is verified and timed briefly; the fastest
** few are then timed with the full sample count, and the winner is chosen
** among those. Each measurement is stored as soon as it is made, the
** screened ones as pending until the finalists are timed: a run stopped
** half way keeps them, and the next run times the finalists among them. */
#define SCREEN_SAMPLES 5
#define FINALISTS 6
#define PENDING_NOTE "screened: timed with 5 samples, full timing pending"
#define SCREENED_NOTE "screened out: timed with 5 samples"

static int pending(const q4db_measurement *m) { return m->ok && !strcmp(m->note, PENDING_NOTE); }

/* Which candidates still need measuring somewhere. */
static q4_status find_todo(tune_run *r, int *todo) {
  *todo = 0;
  for (int i = 0; i < r->nc; i++) {
    candidate *c = &r->c[i];
    for (int b = 0; b < r->nb && !c->todo; b++) {
      if (!in_range(&c->v, r->buckets[b])) continue;
      int found = r->o->force ? 0 : 1;
      if (!r->o->force) {
        q4db_measurement m;
        pthread_mutex_lock(&r->h->lock);
        q4_status st = q4db_measurement_find(r->h->db, r->h->device_id, c->id, r->s, r->buckets[b], &m, &found);
        pthread_mutex_unlock(&r->h->lock);
        if (st) return st;
        if (found && pending(&m)) found = 0;  /* an interrupted run's: its full timing is still to do */
      }
      c->todo = !found;
    }
    *todo += c->todo;
  }
  return Q4_OK;
}

static void *compile_worker(void *arg) {
  tune_run *r = arg;
  for (;;) {
    const int i = atomic_fetch_add(&r->next_compile, 1);
    if (i >= r->nc) break;
    candidate *c = &r->c[i];
    if (!c->todo) continue;
    c->compile_st = q4_kernel_precompile(r->h, &c->v);
    if (c->compile_st) snprintf(c->compile_msg, sizeof c->compile_msg, "%s", q4_last_error());
    q4_tune_event ev = {.phase = Q4_TUNE_COMPILE, .done = atomic_fetch_add(&r->compiled, 1) + 1,
                        .total = r->todo, .variant = &c->v, .ok = c->compile_st == Q4_OK,
                        .note = c->compile_msg};
    emit(r, &ev);
  }
  return NULL;
}

/* Compile errors stay with their candidate (measured as rejected). */
static void compile_all(tune_run *r) {
  int threads = r->o->threads > 0 ? r->o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (threads < 1) threads = 1;
  if (threads > 64) threads = 64;
  pthread_t tid[64];
  int started = 0;
  for (; started < threads; started++)
    if (pthread_create(&tid[started], NULL, compile_worker, r)) break;
  if (!started) compile_worker(r);
  for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
}

/* Verify candidate c at the bed's M and time it with `samples` samples.
** Fills `out` whether it passed or not; only a broken context is an error. */
static q4_status measure(tune_run *r, q4_bed *bed, candidate *c, int samples, q4db_measurement *out) {
  q4_handle *h = r->h;
  memset(out, 0, sizeof *out);
  out->device_id = h->device_id;
  out->variant_id = c->id;
  out->shape = *r->s;
  out->m = bed->m;
  out->median_us = out->min_us = out->max_us = out->rel_error = -1;
  q4_status st = c->compile_st;
  q4_kernel *k = NULL;
  int unloadable = 0; /* the driver refused the module, and the context is fine */
  if (!st) {
    pthread_mutex_lock(&h->lock);
    if (!(st = q4_ctx_push(h))) {
      st = q4_kernel_get(h, &c->v, &k);
      /* A variant the driver will not load (say, over a limit the
      ** generator did not foresee) is rejected like one that fails to
      ** compile, as long as the context still works. */
      unloadable = st == Q4_ERR_CUDA && h->cu->CtxSynchronize() == CUDA_SUCCESS;
      q4_ctx_pop(h);
    }
    pthread_mutex_unlock(&h->lock);
  }
  if (st) {
    snprintf(out->note, sizeof out->note, "%s%.230s", unloadable ? "not loaded: " : "",
             c->compile_st ? c->compile_msg : q4_last_error());
    if (unloadable) st = Q4_OK;
  } else if (k->spill_bytes > 0) {
    /* registers spilled to local memory: never the fastest, not worth timing */
    snprintf(out->note, sizeof out->note, "uses %d bytes of local memory per thread (register spills)",
             k->spill_bytes);
  } else if ((st = q4_bed_verify(bed, q4_bed_run_kernel, k, &out->rel_error))) {
    snprintf(out->note, sizeof out->note, "launch failed: %s", q4_last_error());
  } else if (!(out->rel_error <= Q4_REL_ERROR_MAX)) {
    snprintf(out->note, sizeof out->note, "wrong result: relative error %.3g", out->rel_error);
  } else if ((st = q4_bed_time(bed, q4_bed_run_kernel, k, samples, &out->median_us, &out->min_us,
                               &out->max_us))) {
    snprintf(out->note, sizeof out->note, "timing failed: %s", q4_last_error());
  } else {
    out->ok = 1;
  }
  /* A failed launch can leave the context unusable: that ends the run. */
  if (st == Q4_ERR_CUDA) return q4_err(Q4_ERR_CUDA, "%s[%s]: %s", c->v.tmpl, c->v.params, out->note);
  return Q4_OK;
}

static void forget_plans(q4_handle *h, const q4_shape *s) {
  pthread_mutex_lock(&h->lock);
  for (q4_plan **pp = &h->plans; *pp;) {
    q4_plan *p = *pp;
    if (q4_shape_same(&p->shape, s)) {
      *pp = p->next;
      free(p);
    } else {
      pp = &p->next;
    }
  }
  pthread_mutex_unlock(&h->lock);
}

typedef struct result {
  int cand;
  int found;  /* came from the database */
  q4db_measurement meas;
} result;

static int by_median(const void *a, const void *b) {
  const result *x = a, *y = b;
  if (x->meas.ok != y->meas.ok) return y->meas.ok - x->meas.ok;
  return (x->meas.median_us > y->meas.median_us) - (x->meas.median_us < y->meas.median_us);
}

static q4_status store(tune_run *r, const q4db_measurement *m) {
  pthread_mutex_lock(&r->h->lock);
  q4_status st = q4db_measurement_add(r->h->db, m);
  pthread_mutex_unlock(&r->h->lock);
  return st;
}

/* The bed at M = m (fresh x and its reference), set once a bucket, when a
** measurement first needs it. */
static q4_status bed_at(tune_run *r, q4_bed *bed, int m, int *ready) {
  if (*ready) return Q4_OK;
  q4_status st = q4_bed_set_m(bed, m, r->o->seed + (uint64_t)m);
  *ready = st == Q4_OK;
  return st;
}

/* Stores the bucket's winner, chosen from the database (q4db_winner_pick)
** among this run's candidates: another process tuning the same shape at
** the same time may have timed a faster one, and whichever stores last
** then keeps the fastest of both. res[best], this run's own fastest, is
** stored where the table has no fully timed row of them (another run has
** just re-screened them). */
static q4_status store_winner(tune_run *r, int m, const result *res, int n, int best) {
  int64_t *ids = malloc((size_t)n * sizeof *ids);
  if (!ids) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  for (int i = 0; i < n; i++) ids[i] = r->c[res[i].cand].id;
  const candidate *w = &r->c[res[best].cand];
  int64_t id = 0;
  double us = res[best].meas.median_us;
  int found = 0;
  pthread_mutex_lock(&r->h->lock);
  q4_status st = q4db_winner_pick(r->h->db, r->h->device_id, r->s, m, ids, n, &id, &us, &found);
  if (!st && !found) st = q4db_winner_set(r->h->db, r->h->device_id, r->s, m, w->id, us);
  pthread_mutex_unlock(&r->h->lock);
  for (int i = 0; found && i < n; i++)
    if (r->c[res[i].cand].id == id) w = &r->c[res[i].cand];
  free(ids);
  if (st) return st;
  q4_tune_event ev = {.phase = Q4_TUNE_WINNER, .m = m, .variant = &w->v, .ok = 1, .median_us = us};
  emit(r, &ev);
  return Q4_OK;
}

static q4_status tune_bucket(tune_run *r, q4_bed *bed, int bi) {
  const int m = r->buckets[bi];
  int total = 0, n = 0;
  for (int i = 0; i < r->nc; i++) total += in_range(&r->c[i].v, m);
  result *res = calloc((size_t)total + 1, sizeof *res);
  if (!res) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  q4_status st = Q4_OK;
  int bed_ready = 0;
  for (int i = 0; i < r->nc && !st; i++) {
    candidate *c = &r->c[i];
    if (!in_range(&c->v, m)) continue;
    result *x = &res[n++];
    x->cand = i;
    if (!r->o->force) {
      pthread_mutex_lock(&r->h->lock);
      st = q4db_measurement_find(r->h->db, r->h->device_id, c->id, r->s, m, &x->meas, &x->found);
      pthread_mutex_unlock(&r->h->lock);
      if (st) break;
    }
    if (!x->found) {
      if ((st = bed_at(r, bed, m, &bed_ready))) break;
      if ((st = measure(r, bed, c, SCREEN_SAMPLES, &x->meas))) break;
      if (x->meas.ok) snprintf(x->meas.note, sizeof x->meas.note, PENDING_NOTE);
      if ((st = store(r, &x->meas))) break;
    }
    q4_tune_event ev = {.phase = Q4_TUNE_MEASURE, .m = m, .done = n, .total = total, .variant = &c->v,
                        .skipped = x->found, .ok = x->meas.ok, .median_us = x->meas.median_us,
                        .rel_error = x->meas.rel_error, .note = x->meas.note};
    emit(r, &ev);
  }
  /* Full timing of the finalists: the fastest of those screened in this
  ** run or left pending by an interrupted one; then the rest screened out. */
  qsort(res, (size_t)n, sizeof *res, by_median);
  for (int i = 0, finals = 0; i < n && !st; i++) {
    result *x = &res[i];
    if (!pending(&x->meas)) continue;
    if (finals < FINALISTS) {
      finals++;
      st = bed_at(r, bed, m, &bed_ready);
      if (!st) st = measure(r, bed, &r->c[x->cand], r->o->samples, &x->meas);
    } else {
      snprintf(x->meas.note, sizeof x->meas.note, SCREENED_NOTE);
    }
    if (!st) st = store(r, &x->meas);
  }
  /* The winner: the fastest fully timed measurement, old or new. */
  int best = -1;
  for (int i = 0; i < n && !st; i++) {
    const q4db_measurement *mm = &res[i].meas;
    if (mm->ok && strcmp(mm->note, SCREENED_NOTE) && !pending(mm) &&
        (best < 0 || mm->median_us < res[best].meas.median_us))
      best = i;
  }
  if (!st && best < 0) st = q4_err(Q4_ERR_VERIFY, "no variant passed verification for M=%d", m);
  if (!st) st = store_winner(r, m, res, n, best);
  free(res);
  return st;
}

q4_status q4_tune_shape(q4_handle *h, const q4_shape *s, const q4_tune_options *o) {
  q4_err_clear();
  if (!h || !s || !o || !o->m || o->m_count <= 0)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_tune_shape: NULL argument or no M values");
  if (o->samples < 20) return q4_err(Q4_ERR_INVALID_ARG, "q4_tune_shape: at least 20 samples");
  /* the weights a product with this shape would take, for the same checks */
  q4_weights probe = {s->format, s->n, s->k, s->group_size, (void *)16, (void *)16, (void *)16,
                      s->format == Q4_FORMAT_Q4S ? (void *)16 : NULL,
                      s->flags & Q4_SHAPE_ACT_ORDER ? (void *)16 : NULL, (s->flags & Q4_SHAPE_SYMMETRIC) != 0};
  q4_status st = q4_weights_check(&probe);
  if (st) return st;
  tune_run r = {.h = h, .s = s, .o = o};
  for (int i = 0; i < o->m_count; i++) {
    if (o->m[i] <= 0) return q4_err(Q4_ERR_INVALID_ARG, "M=%d: must be at least 1", o->m[i]);
    const int b = q4_m_bucket(o->m[i]);
    int dup = 0;
    for (int j = 0; j < r.nb; j++) dup |= r.buckets[j] == b;
    if (!dup && r.nb < 32) r.buckets[r.nb++] = b;
  }
  st = collect(&r);
  if (!st) st = find_todo(&r, &r.todo);
  if (!st && r.todo) compile_all(&r);
  q4_bed bed;
  memset(&bed, 0, sizeof bed);
  if (!st && r.todo) st = q4_bed_open(&bed, h, s, o->seed, 1);
  for (int b = 0; !st && b < r.nb; b++) st = tune_bucket(&r, &bed, b);
  q4_bed_close(&bed);
  forget_plans(h, s);
  for (int i = 0; i < r.nc; i++) q4_variant_free(&r.c[i].v);
  free(r.c);
  return st;
}
