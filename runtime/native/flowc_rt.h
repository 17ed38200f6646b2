/* flowc_rt: the native support library of flowc's CPU target.
 *
 * Generated code calls these to spread a loop over the cores. The library is
 * built once per machine (flowc.runtime.build.support_library) and every
 * compiled graph links against it, so all of them share one thread pool.
 */
#ifndef FLOWC_RT_H
#define FLOWC_RT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One slice [begin, end) of a parallel loop; `context` is passed through. */
typedef void (*flowc_task)(void *context, int64_t begin, int64_t end);

/* Run fn over [0, n) in equal chunks of at least `grain` iterations on the
 * pool's threads, the caller included; returns when every chunk is done. Runs
 * inline (a single fn(context, 0, n)) when n < 2 * grain, when the pool has one thread,
 * or when called from inside a task (nested loops do not fan out again).
 * Safe to call from several threads at once: their loops take turns. */
void flowc_parallel_for(flowc_task fn, void *context, int64_t n, int64_t grain);

/* How many chunks flowc_parallel_for(fn, context, n, grain) would cut [0, n) into, called here and
 * now (1: it would run inline). Chunk i is [i * c, min(n, (i + 1) * c)) with c = ceil(n / chunks). */
int64_t flowc_parallel_chunks(int64_t n, int64_t grain);

/* Run fn(context, i, i + 1) for every i in [0, n), each on its own thread and all at the same
 * time (a gang: members may wait on each other); the caller runs member 0 and returns when all
 * are done. Members come from the pool, or from new threads when called inside a task. */
void flowc_run_together(flowc_task fn, void *context, int n);

/* How many gangs this process has run (threaded OpenBLAS calls among them): for tests and profiles. */
int64_t flowc_gangs_run(void);

/* Note [one pool] in flowc_rt.c: make an OpenBLAS library (0.3.27 or later) run its threaded calls
 * as gangs on this pool, with flowc's thread count; given that library's
 * openblas_set_threads_callback_function and openblas_set_num_threads. Idempotent; every artifact
 * that calls BLAS does it when loaded. */
typedef void (*flowc_openblas_set_callback)(void *callback);
typedef void (*flowc_openblas_set_threads)(int n);
void flowc_adopt_openblas(flowc_openblas_set_callback set_callback, flowc_openblas_set_threads set_threads);

/* Note [small products on one thread] in flowc_rt.c: a BLAS call of fewer multiply-adds than this
 * runs on one thread. flowc_serial_blas_begin(m * n * k) before the call returns what
 * flowc_serial_blas_end takes after it. */
#define FLOWC_SERIAL_BLAS_MULTIPLY_ADDS (INT64_C(1) << 21)
int flowc_serial_blas_begin(int64_t multiply_adds);
void flowc_serial_blas_end(int begun);

/* A monotonic clock in nanoseconds: FLOWC_PROFILE=1 builds time each kernel with it. */
int64_t flowc_now_ns(void);

/* The number of threads a parallel_for uses, the caller included. */
int flowc_num_threads(void);

/* Set that number; n <= 0 restores the default: the number of CPUs this process
 * may run on (its affinity mask). (flowc's Python side passes FLOWC_NUM_THREADS.) Adopted OpenBLAS
 * libraries get the same count. */
void flowc_set_num_threads(int n);

/* Note [loops run by a gang] in flowc_rt.c: a while loop whose turns are too short for a
 * parallel_for per kernel runs whole on a gang, each member running every turn and its share of
 * each kernel, the members meeting at flowc_gang_barrier between kernels. */
struct flowc_gang;
typedef void (*flowc_gang_task)(void *context, struct flowc_gang *gang, int64_t member, int64_t members);

/* Run fn(context, gang, i, members) for i in [0, members) at once, members = the pool's thread count
 * if `together`, else 1 (and 1 inside a task); the caller is member 0. OpenBLAS runs on one thread
 * meanwhile. */
void flowc_run_gang(flowc_gang_task fn, void *context, int together);

/* Return when every member of `gang` has called it as often as `member` has: nonzero when the gang
 * must stop, a member having seen *error (a kernel's error slot, or NULL) set on arriving. Every
 * member gets the same answer at the same barrier. */
int flowc_gang_barrier(struct flowc_gang *gang, int64_t member, const int64_t *error);

/* How many coming gang runs will run on their caller alone, after one that waited for cores: for tests. */
int flowc_gang_backoff(void);

/* fc.Print inside control flow (Note [printing inside control flow] in ir/ops/checks.py): generated code
 * calls flowc_print with a print op's key, part and parts, the value's dtype code (runtime/printing.py),
 * its buffer, dims and rank; it calls the hook Python set, or does nothing where none is set (a library
 * exported for C). */
typedef void (*flowc_print_hook)(int64_t key, int64_t part, int64_t parts, int64_t dtype, const void *data,
                                 const int64_t *dims, int64_t rank);
void flowc_set_print_hook(flowc_print_hook hook);
void flowc_print(int64_t key, int64_t part, int64_t parts, int64_t dtype, const void *data, const int64_t *dims,
                 int64_t rank);

#ifdef __cplusplus
}
#endif

#endif /* FLOWC_RT_H */
