#ifndef DPPO_CMPI_SHIM_H
#define DPPO_CMPI_SHIM_H
// Open MPI from Debian (libopenmpi-dev); pkg-config `ompi-c` gives the include and library directories.
#include <mpi.h>

// MPI's handles are macros over Open MPI's globals, which Swift cannot import: these return them.
static inline MPI_Comm dppo_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype dppo_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype dppo_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype dppo_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype dppo_mpi_int64(void) { return MPI_INT64_T; }
static inline int dppo_mpi_success(void) { return MPI_SUCCESS; }
static inline int dppo_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
#endif
