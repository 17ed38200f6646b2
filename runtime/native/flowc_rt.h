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

/* A monotonic clock in nanoseconds: FLOWC_PROFILE=1 builds time each kernel with it. */
int64_t flowc_now_ns(void);

/* The number of threads a parallel_for uses, the caller included. */
int flowc_num_threads(void);

/* Set that number; n <= 0 restores the default: $FLOWC_NUM_THREADS, else the
 * number of CPUs this process may run on (its affinity mask). */
void flowc_set_num_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* FLOWC_RT_H */
