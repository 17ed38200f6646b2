/* flowc_rt: a persistent thread pool for flowc's generated code.
 *
 * One pool per process. Workers start on the first parallel loop and then
 * live until the process ends; between loops they spin for a few tens of
 * microseconds (back-to-back kernels of one graph find them awake) and then
 * park on a condition variable, so an idle pool burns no CPU.
 *
 * A loop is a `struct job` on the caller's stack, cut into chunks that the
 * caller and the workers claim from an atomic counter until none are left.
 * `busy` counts the workers inside the job; the caller returns only when it
 * is zero, and it closes the job (pool.job = NULL) under the mutex, which is
 * also the only place a worker joins one, so no worker touches a job after
 * its caller's frame is gone.
 */
#define _GNU_SOURCE
#include "flowc_rt.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024
#define CHUNKS_PER_THREAD 4    /* more chunks than threads, to even out the load */
#define SPIN_NANOSECONDS 50000 /* how long a worker waits awake before parking */

struct job {
    flowc_task fn;
    void *context;
    int64_t n, chunk, num_chunks;
    atomic_int_fast64_t next_chunk; /* the next chunk to claim */
    atomic_int busy;                /* workers that joined and have not left */
};

static struct {
    pthread_mutex_t submit;      /* held by the one caller whose job is open */
    pthread_mutex_t mutex;       /* guards job, num_workers; workers join under it */
    pthread_cond_t wake;         /* parked workers wait here for a job */
    pthread_cond_t done;         /* the caller waits here for busy == 0 */
    struct job *job;             /* the open job, or NULL */
    _Atomic uint64_t generation; /* bumped per job; spinning workers watch it */
    int num_workers;             /* worker threads started so far */
    atomic_int num_threads;      /* threads per loop, caller included; 0: not set yet */
} pool = {
    .submit = PTHREAD_MUTEX_INITIALIZER,
    .mutex = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

/* Set while this thread runs a task: a parallel_for inside one runs inline,
 * since waiting for the pool from inside the pool would deadlock. */
static _Thread_local int in_task;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int64_t flowc_now_ns(void) { return now_nanoseconds(); }

/* Spin until *value != old or the spin time is up; returns the last value read. */
static uint64_t spin_while_equal(_Atomic uint64_t *value, uint64_t old) {
    int64_t deadline = now_nanoseconds() + SPIN_NANOSECONDS;
    for (int i = 1;; i++) {
        uint64_t current = atomic_load_explicit(value, memory_order_acquire);
        if (current != old) return current;
        if (i % 64 == 0 && now_nanoseconds() > deadline) return current;
        cpu_relax();
    }
}

static void run_chunks(struct job *job) {
    for (;;) {
        int64_t chunk = atomic_fetch_add_explicit(&job->next_chunk, 1, memory_order_relaxed);
        if (chunk >= job->num_chunks) return;
        int64_t begin = chunk * job->chunk;
        int64_t end = job->n - begin < job->chunk ? job->n : begin + job->chunk;
        job->fn(job->context, begin, end);
    }
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg; /* worker i takes part while i < num_threads - 1 */
    uint64_t seen = 0;              /* the last generation this worker joined; jobs start at 1 */
    in_task = 1;
    for (;;) {
        spin_while_equal(&pool.generation, seen);
        pthread_mutex_lock(&pool.mutex);
        while (pool.job == NULL || atomic_load(&pool.generation) == seen ||
               index >= atomic_load(&pool.num_threads) - 1)
            pthread_cond_wait(&pool.wake, &pool.mutex);
        struct job *job = pool.job;
        seen = atomic_load(&pool.generation);
        atomic_fetch_add(&job->busy, 1);
        pthread_mutex_unlock(&pool.mutex);

        run_chunks(job);
        /* After this decrement the job (on its caller's stack) may be gone. */
        if (atomic_fetch_sub(&job->busy, 1) == 1) {
            pthread_mutex_lock(&pool.mutex);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.mutex);
        }
    }
    return NULL;
}

/* Start workers up to `count`; called with pool.mutex held. Workers block
 * every signal, so signals keep going to the application's own threads. */
static void start_workers(int count) {
    if (pool.num_workers >= count) return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (pool.num_workers < count) {
        pthread_t thread;
        if (pthread_create(&thread, &attr, worker_main, (void *)(intptr_t)pool.num_workers) != 0)
            break; /* fewer workers: the caller and the others do the chunks */
        pool.num_workers++;
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int clamp_threads(long n) { return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n; }

/* $FLOWC_NUM_THREADS, else the CPUs in this process's affinity mask. */
static int default_num_threads(void) {
    const char *env = getenv("FLOWC_NUM_THREADS");
    if (env != NULL && *env != '\0') {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n > 0) return clamp_threads(n);
    }
#ifdef __linux__
    /* cpu_set_t holds 1024 CPUs; larger machines need a larger mask. */
    for (int cpus = 1024; cpus <= (1 << 16); cpus *= 2) {
        cpu_set_t *set = CPU_ALLOC(cpus);
        size_t size = CPU_ALLOC_SIZE(cpus);
        int ok = set != NULL && sched_getaffinity(0, size, set) == 0;
        int count = ok ? CPU_COUNT_S(size, set) : 0;
        CPU_FREE(set);
        if (ok) return clamp_threads(count);
    }
#endif
    return clamp_threads(sysconf(_SC_NPROCESSORS_ONLN));
}

int flowc_num_threads(void) {
    int n = atomic_load(&pool.num_threads);
    if (n == 0) {
        int expected = 0;
        atomic_compare_exchange_strong(&pool.num_threads, &expected, default_num_threads());
        n = atomic_load(&pool.num_threads);
    }
    return n;
}

void flowc_set_num_threads(int n) {
    atomic_store(&pool.num_threads, n > 0 ? clamp_threads(n) : default_num_threads());
}

void flowc_parallel_for(flowc_task fn, void *context, int64_t n, int64_t grain) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = n >= 2 * grain && !in_task ? flowc_num_threads() : 1;
    /* As many chunks as the grain allows, up to CHUNKS_PER_THREAD per thread, all of one size, a
     * multiple of the threads: 256 rows at a grain of 204 are one chunk, not 204 for the caller and
     * 52 for a worker. */
    int64_t num_chunks = (int64_t)threads * CHUNKS_PER_THREAD;
    if (num_chunks > n / grain) num_chunks = n / grain;
    if (num_chunks > threads) num_chunks -= num_chunks % threads; /* 3 chunks on 2 threads: one waits */
    int64_t chunk = num_chunks > 0 ? n / num_chunks + (n % num_chunks != 0) : n;
    num_chunks = n / chunk + (n % chunk != 0);
    if (threads <= 1 || num_chunks <= 1) {
        fn(context, 0, n);
        return;
    }

    struct job job = {.fn = fn, .context = context, .n = n, .chunk = chunk, .num_chunks = num_chunks};
    atomic_init(&job.next_chunk, 0);
    atomic_init(&job.busy, 0);
    pthread_mutex_lock(&pool.submit);
    pthread_mutex_lock(&pool.mutex);
    start_workers(threads - 1);
    pool.job = &job;
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mutex);

    in_task = 1;
    run_chunks(&job);
    in_task = 0;

    /* Every chunk is claimed; wait for the workers still running one. */
    int64_t deadline = now_nanoseconds() + SPIN_NANOSECONDS;
    for (int i = 1; atomic_load(&job.busy) > 0; i++) {
        if (i % 64 == 0 && now_nanoseconds() > deadline) break;
        cpu_relax();
    }
    pthread_mutex_lock(&pool.mutex);
    while (atomic_load(&job.busy) > 0) pthread_cond_wait(&pool.done, &pool.mutex);
    pool.job = NULL;
    pthread_mutex_unlock(&pool.mutex);
    pthread_mutex_unlock(&pool.submit);
}

/* fork(): the child has only the forking thread, so its pool must forget the
 * parent's workers. Holding both locks across fork() means no job is open and
 * no lock is held by a thread that the child lacks. */
static void before_fork(void) {
    pthread_mutex_lock(&pool.submit);
    pthread_mutex_lock(&pool.mutex);
}

static void after_fork_in_parent(void) {
    pthread_mutex_unlock(&pool.mutex);
    pthread_mutex_unlock(&pool.submit);
}

static void after_fork_in_child(void) {
    pthread_mutex_init(&pool.submit, NULL);
    pthread_mutex_init(&pool.mutex, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.job = NULL;
    pool.num_workers = 0; /* the next parallel_for starts fresh ones */
}

/* Nothing runs at exit: parked workers hold no resource that needs freeing,
 * and the library is linked -z nodelete, so its code stays mapped for them. */
__attribute__((constructor)) static void register_fork_handlers(void) {
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}
