/*
** q4_nvrtc.c -- compile CUDA C++ to cubins with NVRTC, loaded with dlopen.
**
** Only the one-time load is serialized: every compilation owns its
** nvrtcProgram, so threads compile in parallel.
*/
#include "q4_nvrtc.h"

#include <ctype.h>
#include <dlfcn.h>
#include <nvrtc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "q4_error.h"

#ifndef Q4TUNE_BUILD_CUDA_HOME
#define Q4TUNE_BUILD_CUDA_HOME "/usr/local/cuda"
#endif

#define LOG_LINES 15     /* lines of a failed compile's log in the message */
#define MAX_ARCHS 64

typedef struct nvrtc_api {
  nvrtcResult (*Version)(int *major, int *minor);
  const char *(*GetErrorString)(nvrtcResult r);
  nvrtcResult (*CreateProgram)(nvrtcProgram *p, const char *src, const char *name,
                               int nheaders, const char *const *headers,
                               const char *const *include_names);
  nvrtcResult (*DestroyProgram)(nvrtcProgram *p);
  nvrtcResult (*CompileProgram)(nvrtcProgram p, int nopts, const char *const *opts);
  nvrtcResult (*GetProgramLogSize)(nvrtcProgram p, size_t *size);
  nvrtcResult (*GetProgramLog)(nvrtcProgram p, char *log);
  nvrtcResult (*GetCUBINSize)(nvrtcProgram p, size_t *size);
  nvrtcResult (*GetCUBIN)(nvrtcProgram p, char *cubin);
  /* Optional (CUDA 11.2+): the archs this NVRTC can target. */
  nvrtcResult (*GetNumSupportedArchs)(int *n);
  nvrtcResult (*GetSupportedArchs)(int *archs);
} nvrtc_api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static nvrtc_api nv;
static q4_status load_status;
static char load_msg[768];
static int archs[MAX_ARCHS], narchs;  /* 0: unknown, don't check */

/* ---- locating the toolkit ------------------------------------------------ */

enum { ROOT_OK, ROOT_BAD_ENV, ROOT_NONE, ROOT_TOO_LONG };

/* Copy dir into root without trailing slashes; 1 if root/include/cuda_fp16.h
** is readable. */
static int has_headers(const char *dir, char *root, size_t size) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  if (n + sizeof "/include/cuda_fp16.h" > size) return 0;
  memcpy(root, dir, n);
  root[n] = '\0';
  char probe[4096];
  snprintf(probe, sizeof probe, "%s/include/cuda_fp16.h", root);
  return access(probe, R_OK) == 0;
}

/* Find the toolkit root without touching the thread's error message. An
** explicit $CUDA_HOME / $CUDA_PATH that lacks the headers is reported as
** ROOT_BAD_ENV (its name in *var, its value in root), not skipped: a wrong
** setting should be fixed, not silently overridden. */
static int find_root(char *root, size_t size, const char **var) {
  static const char *vars[] = {"CUDA_HOME", "CUDA_PATH"};
  for (int i = 0; i < 2; i++) {
    const char *v = getenv(vars[i]);
    if (!v || !*v) continue;
    *var = vars[i];
    if (has_headers(v, root, size)) return ROOT_OK;
    snprintf(root, size, "%s", v);
    return ROOT_BAD_ENV;
  }
  if (has_headers(Q4TUNE_BUILD_CUDA_HOME, root, size)) return ROOT_OK;
  if (has_headers("/usr/local/cuda", root, size)) return ROOT_OK;
  return ROOT_NONE;
}

static q4_status root_error(int r, const char *var, const char *root) {
  if (r == ROOT_BAD_ENV)
    return q4_err(Q4_ERR_NO_HEADERS,
                  "%s=%s has no include/cuda_fp16.h: point %s at a CUDA toolkit "
                  "(the directory holding include/), or unset it", var, root, var);
  if (r == ROOT_TOO_LONG)
    return q4_err(Q4_ERR_INVALID_ARG, "the CUDA include path does not fit the buffer");
  if (!strcmp(Q4TUNE_BUILD_CUDA_HOME, "/usr/local/cuda"))
    return q4_err(Q4_ERR_NO_HEADERS,
                  "CUDA headers not found: no include/cuda_fp16.h in /usr/local/cuda "
                  "(CUDA_HOME and CUDA_PATH are unset): set CUDA_HOME to a CUDA toolkit");
  return q4_err(Q4_ERR_NO_HEADERS,
                "CUDA headers not found: no include/cuda_fp16.h in %s or /usr/local/cuda "
                "(CUDA_HOME and CUDA_PATH are unset): set CUDA_HOME to a CUDA toolkit",
                Q4TUNE_BUILD_CUDA_HOME);
}

q4_status q4_cuda_include_dir(char *buf, size_t size) {
  if (!buf || size == 0) return q4_err(Q4_ERR_INVALID_ARG, "q4_cuda_include_dir: no buffer");
  buf[0] = '\0';
  char root[4096];
  const char *var = NULL;
  int r = find_root(root, sizeof root, &var);
  if (r == ROOT_OK && (size_t)snprintf(buf, size, "%s/include", root) >= size) {
    buf[0] = '\0';
    r = ROOT_TOO_LONG;
  }
  return r == ROOT_OK ? Q4_OK : root_error(r, var, root);
}

/* ---- loading libnvrtc ----------------------------------------------------- */

static int bind(void *lib) {
#define B(field, name) if (!(*(void **)&nv.field = dlsym(lib, name))) return 0
  B(Version, "nvrtcVersion");
  B(GetErrorString, "nvrtcGetErrorString");
  B(CreateProgram, "nvrtcCreateProgram");
  B(DestroyProgram, "nvrtcDestroyProgram");
  B(CompileProgram, "nvrtcCompileProgram");
  B(GetProgramLogSize, "nvrtcGetProgramLogSize");
  B(GetProgramLog, "nvrtcGetProgramLog");
  B(GetCUBINSize, "nvrtcGetCUBINSize");
  B(GetCUBIN, "nvrtcGetCUBIN");
#undef B
  *(void **)&nv.GetNumSupportedArchs = dlsym(lib, "nvrtcGetNumSupportedArchs");
  *(void **)&nv.GetSupportedArchs = dlsym(lib, "nvrtcGetSupportedArchs");
  return 1;
}

static void query_archs(void) {
  int n = 0;
  if (!nv.GetNumSupportedArchs || !nv.GetSupportedArchs) return;
  if (nv.GetNumSupportedArchs(&n) != NVRTC_SUCCESS || n <= 0 || n > MAX_ARCHS) return;
  if (nv.GetSupportedArchs(archs) == NVRTC_SUCCESS) narchs = n;
}

/* Try one file name; on failure append it and the reason to `tried`. */
static void *try_open(const char *name, char *tried, size_t size) {
  void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (lib) return lib;
  const char *why = dlerror();
  /* (cut short where `tried` ends: the reasons before it stand) */
  if (*tried) strncat(tried, "; ", size - strlen(tried) - 1);
  strncat(tried, why ? why : name, size - strlen(tried) - 1);
  return NULL;
}

static void *open_nvrtc(char *tried, size_t size) {
  const char *env = getenv("Q4TUNE_LIBNVRTC");
  if (env && *env) return try_open(env, tried, size);
  void *lib = try_open("libnvrtc.so.13", tried, size);
  if (!lib) lib = try_open("libnvrtc.so", tried, size);
  /* Not on the loader path: take the one beside the headers we'll use. */
  char root[4096], path[4200];
  const char *var = NULL;
  static const char *files[] = {"libnvrtc.so.13", "libnvrtc.so", "libnvrtc.so.12"};
  if (!lib && find_root(root, sizeof root, &var) == ROOT_OK)
    for (int i = 0; i < 3 && !lib; i++) {
      snprintf(path, sizeof path, "%s/lib64/%s", root, files[i]);
      lib = try_open(path, tried, size);
    }
  return lib;
}

static void load(void) {
  char tried[600] = "";
  void *lib = open_nvrtc(tried, sizeof tried);
  if (!lib) {
    load_status = Q4_ERR_NVRTC;
    snprintf(load_msg, sizeof load_msg,
             "cannot load NVRTC (%s): install the CUDA toolkit (12 or newer) and set "
             "CUDA_HOME, or set Q4TUNE_LIBNVRTC to the path of libnvrtc.so", tried);
    return;
  }
  if (!bind(lib)) {
    load_status = Q4_ERR_NVRTC;
    snprintf(load_msg, sizeof load_msg,
             "the NVRTC library loaded lacks nvrtcGetCUBIN or another entry point q4tune "
             "needs: it is too old; install CUDA 12 or newer");
    memset(&nv, 0, sizeof nv);
    dlclose(lib);
    return;
  }
  query_archs();
  load_status = Q4_OK;
}

static q4_status load_nvrtc(void) {
  pthread_once(&load_once, load);
  return load_status == Q4_OK ? Q4_OK : q4_err(load_status, "%s", load_msg);
}

q4_status q4_nvrtc_version(int *major, int *minor) {
  if (!major || !minor) return q4_err(Q4_ERR_INVALID_ARG, "q4_nvrtc_version: NULL output");
  *major = *minor = 0;
  q4_status s = load_nvrtc();
  if (s) return s;
  nvrtcResult r = nv.Version(major, minor);
  if (r != NVRTC_SUCCESS)
    return q4_err(Q4_ERR_NVRTC, "nvrtcVersion failed: %s", nv.GetErrorString(r));
  return Q4_OK;
}

/* ---- compiling --------------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static q4_status check_arch(int arch) {
  if (arch <= 0 || arch > 1000)
    return q4_err(Q4_ERR_INVALID_ARG, "invalid GPU architecture %d (expected e.g. 80 for sm_80)",
                  arch);
  if (arch < 70)
    return q4_err(Q4_ERR_UNSUPPORTED, "sm_%d is not supported: q4tune needs sm_70 or newer",
                  arch);
  return Q4_OK;
}

/* Whether the loaded NVRTC can target sm_<arch> (CUDA 13 dropped sm_70, for
** one): a clear message beats NVRTC's "invalid value for --gpu-architecture". */
static q4_status check_nvrtc_arch(int arch) {
  if (narchs == 0) return Q4_OK;
  for (int i = 0; i < narchs; i++)
    if (archs[i] == arch) return Q4_OK;
  int major = 0, minor = 0;
  nv.Version(&major, &minor);
  return q4_err(Q4_ERR_UNSUPPORTED,
                "NVRTC %d.%d cannot compile for sm_%d (it supports sm_%d to sm_%d): use a "
                "CUDA toolkit that supports this GPU", major, minor, arch, archs[0],
                archs[narchs - 1]);
}

/* Read "N registers", "N bytes smem", "N bytes spill stores/loads" from one
** line of ptxas -v output. Numbers count only at the start of a word, so
** digits inside mangled names are skipped. */
static void parse_line(const char *line, const char *end, q4_compiled *out) {
  int spill = 0;
  for (const char *p = line; p < end; p++) {
    if (!isdigit((unsigned char)*p) || (p > line && !isspace((unsigned char)p[-1]))) continue;
    char *rest;
    long v = strtol(p, &rest, 10);
    if (v < 0 || v > 1 << 30) v = 0;
    if (!strncmp(rest, " registers", 10) && v > out->regs) out->regs = (int)v;
    else if (!strncmp(rest, " bytes smem", 11) && v > out->smem_static) out->smem_static = (int)v;
    else if (!strncmp(rest, " bytes spill stores", 19) || !strncmp(rest, " bytes spill loads", 18))
      spill += (int)v;
    p = rest - 1;
  }
  if (spill > out->spill_bytes) out->spill_bytes = spill;
}

static void parse_ptxas(const char *log, q4_compiled *out) {
  for (const char *p = log; *p;) {
    const char *nl = strchr(p, '\n');
    const char *end = nl ? nl : p + strlen(p);
    parse_line(p, end, out);
    p = nl ? nl + 1 : end;
  }
}

/* The first LOG_LINES lines of a log, in buf. */
static const char *log_head(const char *log, char *buf, size_t size) {
  const char *p = log;
  for (int i = 0; i < LOG_LINES && *p; i++) {
    const char *nl = strchr(p, '\n');
    p = nl ? nl + 1 : p + strlen(p);
  }
  size_t n = (size_t)(p - log);
  if (n >= size) n = size - 1;
  memcpy(buf, log, n);
  while (n > 0 && buf[n - 1] == '\n') n--;
  buf[n] = '\0';
  return buf;
}

static char *get_log(nvrtcProgram prog) {
  size_t size = 0;
  if (nv.GetProgramLogSize(prog, &size) != NVRTC_SUCCESS) size = 0;
  char *log = malloc(size + 1);
  if (!log) return NULL;
  if (size == 0 || nv.GetProgramLog(prog, log) != NVRTC_SUCCESS) size = 0;
  log[size] = '\0';
  return log;
}

static q4_status nvrtc_fail(nvrtcResult r, const char *what, const char *name) {
  q4_status s = r == NVRTC_ERROR_OUT_OF_MEMORY ? Q4_ERR_NO_MEMORY : Q4_ERR_NVRTC;
  return q4_err(s, "%s for %s failed: %s", what, name, nv.GetErrorString(r));
}

static q4_status get_cubin(nvrtcProgram prog, const char *name, q4_compiled *out) {
  size_t size = 0;
  nvrtcResult r = nv.GetCUBINSize(prog, &size);
  if (r != NVRTC_SUCCESS) return nvrtc_fail(r, "nvrtcGetCUBINSize", name);
  if (size == 0) return q4_err(Q4_ERR_NVRTC, "NVRTC produced an empty cubin for %s", name);
  out->cubin = malloc(size);
  if (!out->cubin) return q4_err(Q4_ERR_NO_MEMORY, "out of memory for a %zu-byte cubin", size);
  r = nv.GetCUBIN(prog, out->cubin);
  if (r != NVRTC_SUCCESS) return nvrtc_fail(r, "nvrtcGetCUBIN", name);
  out->size = size;
  return Q4_OK;
}

/* NVRTC 13 can serve a cubin from the driver's compute cache, and then ptxas
** never runs and the log has no register counts; --no-cache prevents that
** (q4tune caches cubins itself). Older NVRTCs reject the option: the first
** INVALID_OPTION turns it off for the process. */
static atomic_int use_no_cache = 1;

/* Run nvrtcCompileProgram on a fresh program (a program compiles only once). */
static nvrtcResult run_nvrtc(nvrtcProgram *prog, const char *source, const char *name,
                             int arch, const char *incdir) {
  char arch_opt[64], inc_opt[4200];
  /* sm_90 compiles for sm_90a, the H100's own target, which adds wgmma: a
  ** cubin is built for the GPU it runs on, so nothing is lost. Every NVRTC
  ** q4tune loads (12.0 or newer, see load) knows sm_90a where it knows sm_90. */
  snprintf(arch_opt, sizeof arch_opt, "--gpu-architecture=sm_%d%s", arch, arch == 90 ? "a" : "");
  snprintf(inc_opt, sizeof inc_opt, "-I%s", incdir);
  /* No --use_fast_math: it would change the numerics we verify against. */
  const char *opts[] = {arch_opt, "-std=c++17", inc_opt, "--ptxas-options=-v",
                        "-default-device", "-DNDEBUG", "--no-cache"};
  int nopts = (int)(sizeof opts / sizeof opts[0]);
  int no_cache = atomic_load(&use_no_cache);
  nvrtcResult r = nv.CreateProgram(prog, source, name, 0, NULL, NULL);
  if (r != NVRTC_SUCCESS) return r;
  r = nv.CompileProgram(*prog, no_cache ? nopts : nopts - 1, opts);
  if (r != NVRTC_ERROR_INVALID_OPTION || !no_cache) return r;
  atomic_store(&use_no_cache, 0);
  nv.DestroyProgram(prog);
  *prog = NULL;
  r = nv.CreateProgram(prog, source, name, 0, NULL, NULL);
  return r != NVRTC_SUCCESS ? r : nv.CompileProgram(*prog, nopts - 1, opts);
}

/* Compile and fill `out`; *prog is left for the caller to destroy. */
static q4_status compile_program(nvrtcProgram *prog, const char *source, const char *name,
                                 int arch, const char *incdir, q4_compiled *out) {
  nvrtcResult r = run_nvrtc(prog, source, name, arch, incdir);
  if (!*prog) return nvrtc_fail(r, "nvrtcCreateProgram", name);
  out->log = get_log(*prog);
  if (!out->log) return q4_err(Q4_ERR_NO_MEMORY, "out of memory for the NVRTC log");
  if (r != NVRTC_SUCCESS) {
    char head[900];
    return q4_err(r == NVRTC_ERROR_OUT_OF_MEMORY ? Q4_ERR_NO_MEMORY : Q4_ERR_NVRTC,
                  "NVRTC failed to compile %s for sm_%d (%s):\n%s", name, arch,
                  nv.GetErrorString(r), log_head(out->log, head, sizeof head));
  }
  q4_status s = get_cubin(*prog, name, out);
  if (s) return s;
  parse_ptxas(out->log, out);
  return Q4_OK;
}

q4_status q4_nvrtc_compile(const char *source, const char *name, int arch,
                           q4_compiled *out) {
  if (!out) return q4_err(Q4_ERR_INVALID_ARG, "q4_nvrtc_compile: NULL output");
  memset(out, 0, sizeof *out);
  if (!source || !name || !*name)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_nvrtc_compile: NULL or empty %s",
                  source ? "name" : "source");
  q4_status s = check_arch(arch);
  if (!s) s = load_nvrtc();
  if (!s) s = check_nvrtc_arch(arch);
  char incdir[4096];
  if (!s) s = q4_cuda_include_dir(incdir, sizeof incdir);
  if (s) return s;

  double t0 = now_ms();
  nvrtcProgram prog = NULL;
  s = compile_program(&prog, source, name, arch, incdir, out);
  if (prog) nv.DestroyProgram(&prog);
  out->compile_ms = now_ms() - t0;
  if (s) {
    /* Keep the message: freeing can't fail, and the caller gets no partial result. */
    q4_compiled_free(out);
    return s;
  }
  q4_log(Q4_LOG_DEBUG, "compiled %s for sm_%d: %zu bytes, %d regs, %d spill bytes, %.0f ms",
         name, arch, out->size, out->regs, out->spill_bytes, out->compile_ms);
  return Q4_OK;
}

void q4_compiled_free(q4_compiled *c) {
  if (!c) return;
  free(c->cubin);
  free(c->log);
  memset(c, 0, sizeof *c);
}
