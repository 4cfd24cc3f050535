#pragma once
// Serial stand-in for the OpenMP API, for the fuzz build only (fuzz/CMakeLists.txt):
// it compiles the readers without -fopenmp, so their pragmas are ignored and every
// parallel region runs on one thread. No OpenMP runtime for clang (libomp) is needed.
inline int omp_get_thread_num() { return 0; }
inline int omp_get_num_threads() { return 1; }
inline int omp_get_max_threads() { return 1; }
inline void omp_set_num_threads(int) {}
