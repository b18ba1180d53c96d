/*
** test_nvrtc.c -- NVRTC loading, header lookup and compilation (no GPU needed).
*/
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "q4_error.h"
#include "q4_nvrtc.h"
#include "q4test.h"

/* Exercises what the real kernels use: fp16, wmma, mma.sync and cp.async. */
static const char *kernel_src =
    "#include <cuda_fp16.h>\n"
    "#include <mma.h>\n"
    "using namespace nvcuda;\n"
    "extern \"C\" __global__ void probe(const half *a, const half *b, float *c) {\n"
    "  __shared__ __align__(16) half sa[16 * 16];\n"
    "  unsigned dst = (unsigned)__cvta_generic_to_shared(&sa[threadIdx.x * 8]);\n"
    "  if (threadIdx.x < 32)\n"
    "    asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16;\\n\"\n"
    "                 :: \"r\"(dst), \"l\"(a + threadIdx.x * 8));\n"
    "  asm volatile(\"cp.async.commit_group;\\n\" ::);\n"
    "  asm volatile(\"cp.async.wait_group 0;\\n\" ::: \"memory\");\n"
    "  __syncthreads();\n"
    "  wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa;\n"
    "  wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> fb;\n"
    "  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;\n"
    "  wmma::fill_fragment(fc, 0.0f);\n"
    "  wmma::load_matrix_sync(fa, sa, 16);\n"
    "  wmma::load_matrix_sync(fb, b, 16);\n"
    "  wmma::mma_sync(fc, fa, fb, fc);\n"
    "  wmma::store_matrix_sync(c, fc, 16, wmma::mem_row_major);\n"
    "  const unsigned *ra = (const unsigned *)a, *rb = (const unsigned *)b;\n"
    "  unsigned t = threadIdx.x & 31;\n"
    "  float d[4] = {0.f, 0.f, 0.f, 0.f};\n"
    "  asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 \"\n"
    "               \"{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\\n\"\n"
    "               : \"+f\"(d[0]), \"+f\"(d[1]), \"+f\"(d[2]), \"+f\"(d[3])\n"
    "               : \"r\"(ra[t]), \"r\"(ra[t + 32]), \"r\"(ra[t + 64]), \"r\"(ra[t + 96]),\n"
    "                 \"r\"(rb[t]), \"r\"(rb[t + 32]));\n"
    "  for (int i = 0; i < 4; i++) c[256 + t * 4 + i] = d[i];\n"
    "}\n";

static const char *broken_src =
    "extern \"C\" __global__ void broken(float *x) {\n"
    "  x[0] = 1.0f\n"  /* missing ';' */
    "}\n";

/* ---- environment save/restore ------------------------------------------- */

typedef struct saved_env { char *home, *path; } saved_env;

static char *dup_env(const char *name) {
  const char *v = getenv(name);
  return v ? strdup(v) : NULL;
}

static saved_env save_env(void) {
  saved_env e = {dup_env("CUDA_HOME"), dup_env("CUDA_PATH")};
  return e;
}

static void put_env(const char *name, const char *value) {
  if (value) setenv(name, value, 1);
  else unsetenv(name);
}

static void restore_env(saved_env *e) {
  put_env("CUDA_HOME", e->home);
  put_env("CUDA_PATH", e->path);
}

static void free_env(saved_env *e) {
  free(e->home);
  free(e->path);
}

/* ---- cases ---------------------------------------------------------------- */

static void test_version(void) {
  int major = 0, minor = -1;
  CHECK_OK(q4_nvrtc_version(&major, &minor));
  CHECK_MSG(major >= 12, "NVRTC %d.%d", major, minor);
  CHECK(minor >= 0);
  CHECK(q4_nvrtc_version(NULL, &minor) == Q4_ERR_INVALID_ARG);
}

static void test_default_include_dir(void) {
  char dir[PATH_MAX], probe[PATH_MAX + 32];
  CHECK_OK(q4_cuda_include_dir(dir, sizeof dir));
  size_t n = strlen(dir);
  CHECK_MSG(n > 8 && !strcmp(dir + n - 8, "/include"), "got %s", dir);
  snprintf(probe, sizeof probe, "%s/cuda_fp16.h", dir);
  CHECK_MSG(access(probe, R_OK) == 0, "%s", probe);
  CHECK(q4_cuda_include_dir(NULL, 10) == Q4_ERR_INVALID_ARG);
  char tiny[4];
  CHECK(q4_cuda_include_dir(tiny, sizeof tiny) == Q4_ERR_INVALID_ARG);
}

/* A fake toolkit: tmp/include/cuda_fp16.h symlinked to the real header. */
static int make_fake_toolkit(char *root, size_t size) {
  char real[PATH_MAX], path[PATH_MAX + 64];
  if (q4_cuda_include_dir(real, sizeof real) != Q4_OK) return 0;
  const char *base = getenv("Q4TUNE_TEST_TMP");
  if (base && *base) mkdir(base, 0700);
  snprintf(root, size, "%s/q4nvrtcXXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(root)) return 0;
  snprintf(path, sizeof path, "%s/include", root);
  if (mkdir(path, 0700) != 0) return 0;
  char target[PATH_MAX + 32];
  snprintf(target, sizeof target, "%s/cuda_fp16.h", real);
  snprintf(path, sizeof path, "%s/include/cuda_fp16.h", root);
  return symlink(target, path) == 0;
}

static void remove_fake_toolkit(const char *root) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/include/cuda_fp16.h", root);
  unlink(path);
  snprintf(path, sizeof path, "%s/include", root);
  rmdir(path);
  rmdir(root);
}

static void test_cuda_home_honoured(void) {
  saved_env env = save_env();
  char root[PATH_MAX], dir[PATH_MAX], want[PATH_MAX + 16];
  unsetenv("CUDA_HOME");
  unsetenv("CUDA_PATH");
  CHECK(make_fake_toolkit(root, sizeof root));
  snprintf(want, sizeof want, "%s/include", root);

  setenv("CUDA_HOME", root, 1);
  CHECK_OK(q4_cuda_include_dir(dir, sizeof dir));
  CHECK_MSG(!strcmp(dir, want), "got %s, want %s", dir, want);

  char slashed[PATH_MAX + 2];
  snprintf(slashed, sizeof slashed, "%s/", root);
  setenv("CUDA_HOME", slashed, 1);
  CHECK_OK(q4_cuda_include_dir(dir, sizeof dir));
  CHECK_MSG(!strcmp(dir, want), "trailing slash: got %s", dir);

  /* CUDA_PATH is used when CUDA_HOME is unset. */
  unsetenv("CUDA_HOME");
  setenv("CUDA_PATH", root, 1);
  CHECK_OK(q4_cuda_include_dir(dir, sizeof dir));
  CHECK_MSG(!strcmp(dir, want), "CUDA_PATH: got %s", dir);

  remove_fake_toolkit(root);
  restore_env(&env);
  free_env(&env);
}

static void test_bad_cuda_home(void) {
  saved_env env = save_env();
  char dir[PATH_MAX];
  unsetenv("CUDA_PATH");
  setenv("CUDA_HOME", "/nonexistent", 1);
  CHECK(q4_cuda_include_dir(dir, sizeof dir) == Q4_ERR_NO_HEADERS);
  CHECK_MSG(strstr(q4_last_error(), "/nonexistent") != NULL, "%s", q4_last_error());
  CHECK_MSG(strstr(q4_last_error(), "CUDA_HOME") != NULL, "%s", q4_last_error());

  q4_compiled c;
  CHECK(q4_nvrtc_compile(kernel_src, "probe.cu", 80, &c) == Q4_ERR_NO_HEADERS);
  CHECK(strstr(q4_last_error(), "/nonexistent") != NULL);
  CHECK(c.cubin == NULL && c.log == NULL);

  /* A wrong CUDA_PATH is an error too when CUDA_HOME is unset. */
  unsetenv("CUDA_HOME");
  setenv("CUDA_PATH", "/nonexistent/cuda", 1);
  CHECK(q4_cuda_include_dir(dir, sizeof dir) == Q4_ERR_NO_HEADERS);
  CHECK_MSG(strstr(q4_last_error(), "CUDA_PATH=/nonexistent/cuda") != NULL, "%s",
            q4_last_error());

  restore_env(&env);
  free_env(&env);
  CHECK_OK(q4_cuda_include_dir(dir, sizeof dir));
}

static void compile_ok(int arch) {
  q4_compiled c;
  q4_status s = q4_nvrtc_compile(kernel_src, "probe.cu", arch, &c);
  CHECK_MSG(s == Q4_OK, "sm_%d: %s: %s", arch, q4_status_name(s), q4_last_error());
  if (s != Q4_OK) return;
  CHECK(c.cubin != NULL && c.size > 4);
  CHECK(c.size > 4 && !memcmp(c.cubin, "\x7f" "ELF", 4));
  CHECK_MSG(c.regs > 0, "sm_%d: regs %d, log:\n%s", arch, c.regs, c.log);
  CHECK_MSG(c.smem_static >= 512, "sm_%d: smem %d", arch, c.smem_static);
  CHECK(c.spill_bytes >= 0);
  CHECK(c.compile_ms > 0);
  CHECK(c.log != NULL);
  q4_compiled_free(&c);
  CHECK(c.cubin == NULL && c.log == NULL && c.size == 0);
}

static void test_compile(void) {
  compile_ok(80);
  compile_ok(90);
}

static void test_syntax_error(void) {
  q4_compiled c;
  CHECK(q4_nvrtc_compile(broken_src, "broken.cu", 80, &c) == Q4_ERR_NVRTC);
  const char *msg = q4_last_error();
  CHECK_MSG(strstr(msg, "error") != NULL, "%s", msg);
  CHECK_MSG(strstr(msg, "broken.cu") != NULL, "%s", msg);
  CHECK(c.cubin == NULL && c.log == NULL);
}

static void test_bad_args(void) {
  q4_compiled c;
  CHECK(q4_nvrtc_compile(NULL, "x.cu", 80, &c) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile(kernel_src, NULL, 80, &c) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile(kernel_src, "x.cu", 80, NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile(kernel_src, "x.cu", 0, &c) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile(kernel_src, "x.cu", 61, &c) == Q4_ERR_UNSUPPORTED);
  CHECK(strstr(q4_last_error(), "sm_61") != NULL);
  q4_compiled_free(NULL);
}

typedef struct job { int arch; q4_status status; char msg[256]; int regs; } job;

static void *compile_thread(void *arg) {
  job *j = arg;
  q4_compiled c;
  j->status = q4_nvrtc_compile(kernel_src, "probe.cu", j->arch, &c);
  snprintf(j->msg, sizeof j->msg, "%s", q4_last_error());
  j->regs = c.regs;
  q4_compiled_free(&c);
  return NULL;
}

static void test_threads(void) {
  job jobs[2] = {{.arch = 80}, {.arch = 90}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, compile_thread, &jobs[i]) == 0);
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    CHECK_MSG(jobs[i].status == Q4_OK, "thread %d: %s", i, jobs[i].msg);
    CHECK(jobs[i].regs > 0);
  }
}

/* In a child with Q4TUNE_LIBNVRTC=lib (NVRTC loads once per process): 1
** if loading fails with Q4_ERR_NVRTC and a message holding `needle`. */
static int missing_in_child(const char *lib, const char *needle) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    setenv("Q4TUNE_LIBNVRTC", lib, 1);
    int major = 0, minor = 0;
    const q4_status st = q4_nvrtc_version(&major, &minor);
    const int ok = st == Q4_ERR_NVRTC && strstr(q4_last_error(), needle) != NULL;
    if (!ok) fprintf(stderr, "Q4TUNE_LIBNVRTC=%.80s: %s \"%s\"\n", lib, q4_status_name(st), q4_last_error());
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* A library that is not there: the message names it and says what to do;
** a name longer than the message holds is cut short, not overrun. */
static void test_missing_library(void) {
  CHECK(missing_in_child("/nonexistent/libnvrtc.so.13", "/nonexistent/libnvrtc.so.13"));
  CHECK(missing_in_child("/nonexistent/libnvrtc.so.13", "set Q4TUNE_LIBNVRTC"));
  char longname[2048] = "/nonexistent/";
  memset(longname + 13, 'n', sizeof longname - 14);
  longname[sizeof longname - 1] = '\0';
  CHECK(missing_in_child(longname, "cannot load NVRTC (/nonexistent/nnn"));
}

int main(void) {
  test_missing_library();
  test_version();
  test_default_include_dir();
  test_bad_args();
  test_cuda_home_honoured();
  test_bad_cuda_home();
  test_compile();
  test_syntax_error();
  test_threads();
  return q4test_done("test_nvrtc");
}
