#ifndef DPPO_COPENBLAS_SHIM_H
#define DPPO_COPENBLAS_SHIM_H
// Debian installs OpenBLAS's cblas.h under the multiarch include directory.
#if __has_include(<cblas-openblas.h>)
#include <cblas-openblas.h>
#elif __has_include(<x86_64-linux-gnu/cblas-openblas.h>)
#include <x86_64-linux-gnu/cblas-openblas.h>
#elif __has_include(<aarch64-linux-gnu/cblas-openblas.h>)
#include <aarch64-linux-gnu/cblas-openblas.h>
#else
#include <cblas.h>
#endif
#endif
