/*
** q4_sparse_gpu.h -- the CUDA source of the q4s GPU utilities (internal):
** q4_sparse_pack, q4_sparse_validate and q4_sparse_unpack compile it through
** q4_module_load; tests compile it with NVRTC on machines without a GPU.
*/
#ifndef Q4_SPARSE_GPU_H
#define Q4_SPARSE_GPU_H

/* Kernels (extern "C"): q4s_check, q4s_pack, q4s_validate, q4s_unpack. */
extern const char q4_sparse_gpu_source[];

#endif
