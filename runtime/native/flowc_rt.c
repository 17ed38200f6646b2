/* flowc_rt: a persistent thread pool for flowc's generated code.
 *
 * One pool per process. Workers start on the first parallel loop and then
 * live until the process ends; between loops they wait awake for a
 * millisecond (the kernels of one run, and the runs of a training loop, find
 * them awake: waking a parked thread took 50-60 us on a 2-core VM) and then
 * park on a condition variable, so an idle pool burns no CPU. Waiting awake
 * yields the CPU after the first few hundred pauses, so a waiting thread
 * never keeps a runnable one (the pool's own, or the application's) off its
 * core.
 *
 * A loop is a `struct job` on the caller's stack, cut into chunks that the
 * caller and the workers claim from an atomic counter until none are left.
 * `busy` counts the workers inside the job; the caller returns only when it
 * is zero, and it closes the job (pool.job = NULL) under the mutex, which is
 * also the only place a worker joins one, so no worker touches a job after
 * its caller's frame is gone.
 *
 * A gang (flowc_run_together) is a job whose chunks must all run at once,
 * each on its own thread: OpenBLAS's threads run as one (Note [one pool]).
 */
#define _GNU_SOURCE
#include "flowc_rt.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024
#define CHUNKS_PER_THREAD 4    /* more chunks than threads, to even out the load */
#define SPIN_NANOSECONDS 1000000 /* how long a thread waits awake before parking */
#define SPIN_PAUSES 256          /* pauses before waiting awake turns to yielding */

struct job {
    flowc_task fn;
    void *context;
    int64_t n, chunk, num_chunks;
    int workers;                    /* how many workers may join: worker i does while i < workers */
    int64_t claims;                 /* chunks one thread may claim: 1 in a gang, else all */
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

/* The i-th turn of a wait: a pause, later a yield to whatever else could run here. */
static void wait_awake(int i) {
    if (i > SPIN_PAUSES) {
        sched_yield();
        return;
    }
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
        if (i % 16 == 0 && now_nanoseconds() > deadline) return current;
        wait_awake(i);
    }
}

/* Lock pool.mutex awake. Its holders keep it for a few hundred nanoseconds, but a thread that
 * blocks on it sleeps in the kernel, and the unlock that wakes it is a system call on its holder's
 * path: a worker that saw a new job while the caller still held the mutex slept until after the
 * caller's first chunk. */
static void lock_awake(void) {
    for (int i = 1; pthread_mutex_trylock(&pool.mutex) != 0; i++) wait_awake(i);
}

static void run_chunks(struct job *job) {
    for (int64_t claimed = 0; claimed < job->claims; claimed++) {
        int64_t chunk = atomic_fetch_add_explicit(&job->next_chunk, 1, memory_order_relaxed);
        if (chunk >= job->num_chunks) return;
        int64_t begin = chunk * job->chunk;
        int64_t end = job->n - begin < job->chunk ? job->n : begin + job->chunk;
        job->fn(job->context, begin, end);
    }
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg; /* worker i takes part in a job while i < job->workers */
    uint64_t seen = 0;              /* the last generation this worker saw; jobs start at 1 */
    int unwanted = 0;               /* the last job was for fewer workers: park without spinning */
    in_task = 1;
    for (;;) {
        if (!unwanted) spin_while_equal(&pool.generation, seen);
        lock_awake();
        /* Park when the spin ran out with no new job, or was skipped. */
        while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.wake, &pool.mutex);
        seen = atomic_load(&pool.generation);
        struct job *job = pool.job;
        unwanted = job != NULL && index >= job->workers;
        if (job == NULL || unwanted) {
            /* A job that is over (its caller did every chunk) is waited out awake: parking here
             * made a worker that was late once miss the next job too, woken 50 us after it
             * began, and the softmax step's two narrow products ran on the caller alone in
             * about half the steps. */
            pthread_mutex_unlock(&pool.mutex);
            continue;
        }
        atomic_fetch_add(&job->busy, 1);
        pthread_mutex_unlock(&pool.mutex);

        run_chunks(job);
        /* After this decrement the job (on its caller's stack) may be gone. */
        if (atomic_fetch_sub(&job->busy, 1) == 1) {
            lock_awake();
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

/* The CPUs in this process's affinity mask. FLOWC_NUM_THREADS is read on the Python side, once
 * (Note [run options] in runtime/options.py), which sets the count through flowc_set_num_threads. */
static int default_num_threads(void) {
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

static void set_openblas_threads(int n);

void flowc_set_num_threads(int n) {
    atomic_store(&pool.num_threads, n > 0 ? clamp_threads(n) : default_num_threads());
    set_openblas_threads(atomic_load(&pool.num_threads));
}

static void run_job(struct job *job);

/* How flowc_parallel_for cuts [0, n): as many chunks as the grain allows, up to CHUNKS_PER_THREAD
 * per thread, all of one size, a multiple of the threads: 256 rows at a grain of 204 are one chunk,
 * not 204 for the caller and 52 for a worker. Returns the chunk count; *threads and *chunk get the
 * threads that share them and the chunk size. */
static int64_t plan_chunks(int64_t n, int64_t grain, int *threads, int64_t *chunk) {
    if (grain < 1) grain = 1;
    *threads = n >= 2 * grain && !in_task ? flowc_num_threads() : 1;
    int64_t num_chunks = (int64_t)*threads * CHUNKS_PER_THREAD;
    if (num_chunks > n / grain) num_chunks = n / grain;
    if (num_chunks > *threads) num_chunks -= num_chunks % *threads; /* 3 chunks on 2 threads: one waits */
    *chunk = num_chunks > 0 ? n / num_chunks + (n % num_chunks != 0) : n;
    if (*threads <= 1) *chunk = n;
    return n / *chunk + (n % *chunk != 0);
}

int64_t flowc_parallel_chunks(int64_t n, int64_t grain) {
    if (n <= 0) return 0;
    int threads;
    int64_t chunk;
    return plan_chunks(n, grain, &threads, &chunk);
}

void flowc_parallel_for(flowc_task fn, void *context, int64_t n, int64_t grain) {
    if (n <= 0) return;
    int threads;
    int64_t chunk;
    int64_t num_chunks = plan_chunks(n, grain, &threads, &chunk);
    if (num_chunks <= 1) {
        fn(context, 0, n);
        return;
    }

    struct job job = {.fn = fn, .context = context, .n = n, .chunk = chunk, .num_chunks = num_chunks,
                      .workers = threads - 1, .claims = num_chunks};
    pthread_mutex_lock(&pool.submit);
    pthread_mutex_lock(&pool.mutex);
    start_workers(threads - 1);
    run_job(&job);
}

/* Open `job` to the pool, run the caller's share, and return once every chunk is done. Called
 * holding pool.submit and pool.mutex; releases both. */
static void run_job(struct job *job) {
    atomic_init(&job->next_chunk, 0);
    atomic_init(&job->busy, 0);
    pool.job = job;
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mutex);

    in_task = 1;
    run_chunks(job);
    in_task = 0;

    /* A gang's members may not have claimed theirs yet (a parked worker takes a while to wake):
     * yield the CPU to them meanwhile. After that, every joined worker is counted in `busy`. */
    while (atomic_load(&job->next_chunk) < job->num_chunks) sched_yield();
    /* Every chunk is claimed; wait for the workers still running one. */
    int64_t deadline = now_nanoseconds() + SPIN_NANOSECONDS;
    for (int i = 1; atomic_load(&job->busy) > 0; i++) {
        if (i % 16 == 0 && now_nanoseconds() > deadline) break;
        wait_awake(i);
    }
    pthread_mutex_lock(&pool.mutex);
    while (atomic_load(&job->busy) > 0) pthread_cond_wait(&pool.done, &pool.mutex);
    pool.job = NULL;
    pthread_mutex_unlock(&pool.mutex);
    pthread_mutex_unlock(&pool.submit);
}

/* A gang without the pool (from inside a task, or when the pool could not start enough workers):
 * a thread per member but the caller's, joined before returning. Its members wait on each other,
 * so none may be left out: a thread that cannot start is fatal, as it is in OpenBLAS itself. */
struct member {
    flowc_task fn;
    void *context;
    int64_t index;
};

static void *run_member(void *arg) {
    struct member *member = arg;
    member->fn(member->context, member->index, member->index + 1);
    return NULL;
}

static void run_together_on_new_threads(flowc_task fn, void *context, int n) {
    pthread_t *threads = malloc(sizeof(pthread_t) * (size_t)n);
    struct member *members = malloc(sizeof(struct member) * (size_t)n);
    if (threads == NULL || members == NULL) {
        fprintf(stderr, "flowc: out of memory starting %d threads that must run together\n", n);
        abort();
    }
    for (int i = 1; i < n; i++) {
        members[i] = (struct member){fn, context, i};
        if (pthread_create(&threads[i], NULL, run_member, &members[i]) != 0) {
            fprintf(stderr, "flowc: cannot start thread %d of %d that must run together\n", i, n);
            abort();
        }
    }
    int was_in_task = in_task;
    in_task = 1;
    fn(context, 0, 1);
    in_task = was_in_task;
    for (int i = 1; i < n; i++) pthread_join(threads[i], NULL);
    free(threads);
    free(members);
}

static atomic_int_fast64_t gangs_run;

int64_t flowc_gangs_run(void) { return atomic_load(&gangs_run); }

void flowc_run_together(flowc_task fn, void *context, int n) {
    if (n <= 0) return;
    atomic_fetch_add(&gangs_run, 1);
    if (n == 1) {
        fn(context, 0, 1);
        return;
    }
    if (in_task || n > MAX_THREADS) {
        run_together_on_new_threads(fn, context, n);
        return;
    }
    pthread_mutex_lock(&pool.submit);
    pthread_mutex_lock(&pool.mutex);
    start_workers(n - 1);
    if (pool.num_workers < n - 1) {
        pthread_mutex_unlock(&pool.mutex);
        pthread_mutex_unlock(&pool.submit);
        run_together_on_new_threads(fn, context, n);
        return;
    }
    struct job job = {.fn = fn, .context = context, .n = n, .chunk = 1, .num_chunks = n, .workers = n - 1,
                      .claims = 1};
    run_job(&job);
}

/* Note [one pool]: OpenBLAS's pthreads build keeps its own workers, which spin for about 2^28
 * cycles (0.1 s) after each threaded call. On a machine with as many threads as cores, a flowc
 * kernel that follows a BLAS call in the same run then shares a core with a spinning OpenBLAS
 * thread: the 512 -> 10 product after the MLP's sgemms took 100 us on 2 threads instead of 35 on
 * one. OpenBLAS (0.3.27 and later) lets its caller run those threads instead: every artifact that
 * links it hands over its setters (flowc_adopt_openblas, from a constructor), and each threaded
 * call becomes a gang on this pool, which spins only SPIN_NANOSECONDS before parking. */
typedef void (*openblas_job)(int thread_num, void *jobdata, int dojob_data);
typedef void (*openblas_threads)(int sync, openblas_job job, int numjobs, size_t size, void *data, int extra);

struct openblas_call {
    openblas_job job;
    char *data;
    size_t size;
    int extra;
};

/* Member i runs job i with thread number i: OpenBLAS keeps a work buffer per thread number, and
 * members of one call run at once, calls one at a time (the pool's submit lock), so no two running
 * jobs share one. */
static void openblas_member(void *context, int64_t begin, int64_t end) {
    struct openblas_call *call = context;
    for (int64_t i = begin; i < end; i++) call->job((int)i, call->data + (size_t)i * call->size, call->extra);
}

/* OpenBLAS's pthreads server always asks for a synchronous run (sync = 1); one is what we give. */
static void run_openblas_jobs(int sync, openblas_job job, int numjobs, size_t size, void *data, int extra) {
    (void)sync;
    struct openblas_call call = {job, data, size, extra};
    flowc_run_together(openblas_member, &call, numjobs);
}

#define MAX_OPENBLAS 8
static pthread_mutex_t openblas_lock = PTHREAD_MUTEX_INITIALIZER;
static flowc_openblas_set_threads openblas_setters[MAX_OPENBLAS]; /* each adopted library's thread setter */
static int num_openblas;

/* OpenBLAS splits a call into at most its thread count of jobs: keep that flowc's. */
static void set_openblas_threads(int n) {
    pthread_mutex_lock(&openblas_lock);
    for (int i = 0; i < num_openblas; i++) openblas_setters[i](n);
    pthread_mutex_unlock(&openblas_lock);
}

void flowc_adopt_openblas(flowc_openblas_set_callback set_callback, flowc_openblas_set_threads set_threads) {
    pthread_mutex_lock(&openblas_lock);
    int known = 0;
    for (int i = 0; i < num_openblas; i++) known |= openblas_setters[i] == set_threads;
    if (!known && num_openblas < MAX_OPENBLAS) {
        set_callback((void *)run_openblas_jobs);
        set_threads(flowc_num_threads());
        openblas_setters[num_openblas++] = set_threads;
    }
    pthread_mutex_unlock(&openblas_lock);
}

/* Note [small products on one thread]: OpenBLAS threads a product once m * n * k passes 2^18
 * (its GEMM_MULTITHREAD_THRESHOLD), so a 32 x 128 @ 128 x 128 step of an RNN, about 10 us on one
 * core, ran as a gang of two. A gang waits until its other member is on a core: on a loaded
 * machine that is a scheduler's time slice, not the product's 5 us, and a loop of 200 steps of such
 * products ran 5 - 30x slower on two threads than on one (bench/RESULTS.md, Control flow). So a
 * product of fewer than FLOWC_SERIAL_BLAS_MULTIPLY_ADDS runs OpenBLAS on one thread: the kernel
 * brackets its call with these two. OpenBLAS's thread count is one global, and lowering it frees
 * the buffers of its other thread numbers, so the bracket holds pool.submit (no gang, the only way
 * OpenBLAS runs threads here, Note [one pool], starts meanwhile; one waiting to start reads its
 * buffers after we put them back) and openblas_lock (taken first, the fork handlers' order). Inside
 * a task it does nothing: gangs there run on threads of their own, and the caller may hold the pool. */
int flowc_serial_blas_begin(int64_t multiply_adds) {
    if (multiply_adds >= FLOWC_SERIAL_BLAS_MULTIPLY_ADDS || in_task || flowc_num_threads() <= 1) return 0;
    pthread_mutex_lock(&openblas_lock);
    pthread_mutex_lock(&pool.submit);
    for (int i = 0; i < num_openblas; i++) openblas_setters[i](1);
    return 1;
}

void flowc_serial_blas_end(int begun) {
    if (!begun) return;
    for (int i = 0; i < num_openblas; i++) openblas_setters[i](flowc_num_threads());
    pthread_mutex_unlock(&pool.submit);
    pthread_mutex_unlock(&openblas_lock);
}

/* Note [loops run by a gang]: a turn of an RNN's loop is a few short kernels, too short for a
 * parallel_for per kernel (each a job opened under the pool's mutex, joined and waited out) to gain
 * anything. So such a loop (passes/gang_loops.py decides which) runs whole, once per member of a
 * gang: every member runs every turn, each takes its share of a kernel's work (or member 0 all of
 * a small one), and the members meet at a barrier wherever one may read what another wrote
 * (codegen/llvm/gang.py). A barrier costs a cache line passed between the cores, where a job costs
 * several lock handovers. Figures: bench/RESULTS.md, "Control flow".
 *
 * Waiting at a barrier spins with pauses, then yields the core: on a machine with more runnable
 * threads than cores, a member waiting for one that lost its core gives it back, as the pool's own
 * waits do; waits that long also make the next gang runs run alone (below). OpenBLAS runs on one
 * thread while a gang runs: a call inside a task would start threads of its own
 * (run_together_on_new_threads), per call. */

/* A member's arrivals: its barrier count times two, plus one if it saw the error slot set on its last
 * arrival. On a line of its own: a member writes only its own and reads the others'. */
struct gang_word {
    _Alignas(64) _Atomic uint64_t word;
};

struct flowc_gang {
    int64_t members;
    struct gang_word *arrivals; /* one per member */
    atomic_int_fast64_t waited; /* nanoseconds this run's members waited past their spin at barriers */
};

/* Waits past a barrier's spin mean a member lost its core: the machine has more runnable threads than
 * cores, and each barrier may wait for the scheduler, so a gang runs slower than its caller alone. A
 * run whose members waited so for a GANG_WAITED_SHARE of its time makes the next GANG_BACKOFF_RUNS
 * gang runs of the process run on their caller alone; the one after tries a gang again. */
#define GANG_WAITED_SHARE 4 /* a quarter */
#define GANG_BACKOFF_RUNS 32

static atomic_int gang_backoff; /* gang runs left to run alone */

int flowc_gang_backoff(void) { return atomic_load(&gang_backoff); }

/* Each member publishes its arrival and waits until every other member's count reaches its own: one
 * cache line from each other member, where a shared counter costs two transfers in a row. Whether
 * to stop is judged from the words alone: a member that saw the error slot set on arriving at barrier
 * k says so in its word for k, and returns there, so its word stays at k; a member whose word has
 * moved past k did not see it. So every member reads the same answer for barrier k, even while a
 * faster one already runs the next kernel (and may set the slot again for barrier k + 1). A member's
 * own kernel's error is visible to it; another member's write is judged by that member. */
int flowc_gang_barrier(struct flowc_gang *gang, int64_t member, const int64_t *error) {
    int failed = error != NULL && *error != 0;
    if (gang->members <= 1) return failed;
    _Atomic uint64_t *mine = &gang->arrivals[member].word;
    uint64_t count = (atomic_load_explicit(mine, memory_order_relaxed) >> 1) + 1;
    atomic_store_explicit(mine, count << 1 | (uint64_t)failed, memory_order_release);
    int stop = failed;
    int64_t start = 0;
    for (int64_t other = 0; other < gang->members; other++) {
        if (other == member) continue;
        _Atomic uint64_t *theirs = &gang->arrivals[other].word;
        uint64_t word;
        for (int i = 1; ((word = atomic_load_explicit(theirs, memory_order_acquire)) >> 1) < count; i++) {
            wait_awake(i);
            if (i == SPIN_PAUSES && start == 0) start = now_nanoseconds();
        }
        stop |= (word >> 1) == count && (word & 1);
    }
    /* The first barrier may wait for a parked worker to wake, or a new one to start: not load. */
    if (start && count > 1)
        atomic_fetch_add_explicit(&gang->waited, now_nanoseconds() - start, memory_order_relaxed);
    return stop;
}

struct gang_call {
    flowc_gang_task fn;
    void *context;
    struct flowc_gang gang;
};

static void gang_member(void *context, int64_t begin, int64_t end) {
    struct gang_call *call = context;
    for (int64_t i = begin; i < end; i++) call->fn(call->context, &call->gang, i, call->gang.members);
}

void flowc_run_gang(flowc_gang_task fn, void *context, int together) {
    struct gang_call call = {.fn = fn, .context = context};
    call.gang.members = together && !in_task ? flowc_num_threads() : 1;
    if (call.gang.members > 1 && atomic_load(&gang_backoff) > 0) {
        atomic_fetch_sub(&gang_backoff, 1); /* racy with other callers: a run more or less alone */
        call.gang.members = 1;
    }
    atomic_init(&call.gang.waited, 0);
    if (call.gang.members > 1)
        call.gang.arrivals = aligned_alloc(64, sizeof(struct gang_word) * (size_t)call.gang.members);
    if (call.gang.arrivals == NULL) call.gang.members = 1; /* no memory for the words: a gang of one */
    if (call.gang.members == 1) {
        fn(context, &call.gang, 0, 1);
        return;
    }
    for (int64_t i = 0; i < call.gang.members; i++) atomic_init(&call.gang.arrivals[i].word, 0);
    /* OpenBLAS on one thread for the gang's duration, as flowc_serial_blas_begin does for one call;
     * the pool's submit lock is free again for the gang itself (no other BLAS gang can start: their
     * thread count is one until we restore it, under openblas_lock). */
    pthread_mutex_lock(&openblas_lock);
    pthread_mutex_lock(&pool.submit);
    for (int i = 0; i < num_openblas; i++) openblas_setters[i](1);
    pthread_mutex_unlock(&pool.submit);
    int64_t began = now_nanoseconds();
    flowc_run_together(gang_member, &call, (int)call.gang.members);
    int64_t elapsed = now_nanoseconds() - began;
    pthread_mutex_lock(&pool.submit);
    for (int i = 0; i < num_openblas; i++) openblas_setters[i](flowc_num_threads());
    pthread_mutex_unlock(&pool.submit);
    pthread_mutex_unlock(&openblas_lock);
    free(call.gang.arrivals);
    if (atomic_load(&call.gang.waited) / call.gang.members * GANG_WAITED_SHARE > elapsed)
        atomic_store(&gang_backoff, GANG_BACKOFF_RUNS);
}

/* fork(): the child has only the forking thread, so its pool must forget the
 * parent's workers. Holding both locks across fork() means no job is open and
 * no lock is held by a thread that the child lacks. */
static void before_fork(void) {
    pthread_mutex_lock(&openblas_lock);
    pthread_mutex_lock(&pool.submit);
    pthread_mutex_lock(&pool.mutex);
}

static void after_fork_in_parent(void) {
    pthread_mutex_unlock(&pool.mutex);
    pthread_mutex_unlock(&pool.submit);
    pthread_mutex_unlock(&openblas_lock);
}

static void after_fork_in_child(void) {
    pthread_mutex_init(&openblas_lock, NULL);
    pthread_mutex_init(&pool.submit, NULL);
    pthread_mutex_init(&pool.mutex, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.job = NULL;
    pool.num_workers = 0; /* the next parallel_for starts fresh ones */
}

/* -- fc.Print inside control flow (flowc_rt.h) ------------------------------------------------ */

static _Atomic(flowc_print_hook) print_hook;

void flowc_set_print_hook(flowc_print_hook hook) { atomic_store(&print_hook, hook); }

void flowc_print(int64_t key, int64_t part, int64_t parts, int64_t dtype, const void *data, const int64_t *dims,
                 int64_t rank) {
    flowc_print_hook hook = atomic_load(&print_hook);
    if (hook)
        hook(key, part, parts, dtype, data, dims, rank);
}

/* Nothing runs at exit: parked workers hold no resource that needs freeing,
 * and the library is linked -z nodelete, so its code stays mapped for them. */
__attribute__((constructor)) static void register_fork_handlers(void) {
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}
