/* flowc_mpi: the MPI calls of compiled graphs that hold collectives (ir/ops/collective.py).
 *
 * The entry point of such a graph calls these once per collective, on the thread that runs the
 * graph, after the kernel that copied the operand into the result buffer: the collective then
 * works in place on the result. Built on first use against the mpich wheel's mpi.h and linked with
 * its libmpi (flowc.runtime.build.mpi_library). MPI itself is initialized by the Python side
 * (importing mpi4py.MPI, before the graph's library is loaded); an uninitialized MPI is an error
 * code, not a call that crashes.
 *
 * flowc_mpi_iallreduce and flowc_mpi_wait are all_reduce split in two (Note [split collectives] in
 * ir/ops/collective.py): the start's call begins MPI_Iallreduce on its result buffer and keeps the
 * request in a table under the buffer's address; the done's call, before its kernel copies that
 * buffer, waits for every request kept under it. Between the two, MPI moves the bytes only when a
 * thread is inside MPI: so the entry point calls flowc_mpi_progress after each kernel that runs while
 * a start is in flight (codegen/llvm/module.py), one MPI_Test, which advances every request (Note
 * [progress of split collectives] in codegen/llvm/module.py says why not MPICH's progress thread).
 *
 * Each call adds to three counters (calls, bytes, nanoseconds inside MPI), read by flowc_mpi_stats:
 * the time in communication that bench/bench_dist.py reports.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* flowc's dtype codes (codegen/llvm/kernels/collective.py DTYPE_CODES) */
enum { FLOWC_F32 = 0, FLOWC_F64 = 1, FLOWC_I32 = 2, FLOWC_I64 = 3, FLOWC_BOOL = 4 };
/* all_reduce's reductions (REDUCTION_CODES there) */
enum { FLOWC_SUM = 0, FLOWC_MAX = 1, FLOWC_MIN = 2 };

/* The error codes beside MPI's own (which are positive): returned, and reported by compiler/native.py. */
#define FLOWC_MPI_NOT_INITIALIZED (-1)
#define FLOWC_MPI_BAD_ROOT (-2)
#define FLOWC_MPI_BAD_TYPE (-3)
#define FLOWC_MPI_TOO_MANY (-4)
#define FLOWC_MPI_NOT_STARTED (-5)

static int64_t calls, bytes, nanoseconds;

static int64_t now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static MPI_Datatype datatype_of(int code, int *size) {
    switch (code) {
    case FLOWC_F32: *size = 4; return MPI_FLOAT;
    case FLOWC_F64: *size = 8; return MPI_DOUBLE;
    case FLOWC_I32: *size = 4; return MPI_INT32_T;
    case FLOWC_I64: *size = 8; return MPI_INT64_T;
    case FLOWC_BOOL: *size = 1; return MPI_BYTE;
    default: *size = 0; return MPI_DATATYPE_NULL;
    }
}

static MPI_Op op_of(int code) {
    switch (code) {
    case FLOWC_SUM: return MPI_SUM;
    case FLOWC_MAX: return MPI_MAX;
    case FLOWC_MIN: return MPI_MIN;
    default: return MPI_OP_NULL;
    }
}

static int initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}

/* MPI counts are int: a buffer of more elements goes in pieces of at most INT32_MAX. */
#define PIECE ((int64_t)1 << 30)

int32_t flowc_mpi_allreduce(void *buffer, int64_t count, int32_t dtype, int32_t reduction) {
    int size;
    MPI_Datatype type = datatype_of(dtype, &size);
    MPI_Op op = op_of(reduction);
    if (type == MPI_DATATYPE_NULL || op == MPI_OP_NULL || dtype == FLOWC_BOOL) return FLOWC_MPI_BAD_TYPE;
    if (!initialized()) return FLOWC_MPI_NOT_INITIALIZED;
    int64_t start = now();
    for (int64_t done = 0; done < count; done += PIECE) {
        int64_t piece = count - done < PIECE ? count - done : PIECE;
        int status = MPI_Allreduce(MPI_IN_PLACE, (char *)buffer + done * size, (int)piece, type, op, MPI_COMM_WORLD);
        if (status != MPI_SUCCESS) return status;
    }
    nanoseconds += now() - start;
    calls += 1;
    bytes += count * size;
    return 0;
}

/* The requests in flight: a start of more than PIECE elements keeps one per piece, under one buffer.
 * Only the thread that runs the graph calls these, so the table needs no lock. */
#define IN_FLIGHT 1024
static struct { void *buffer; MPI_Request request; } in_flight[IN_FLIGHT];

int32_t flowc_mpi_iallreduce(void *buffer, int64_t count, int32_t dtype, int32_t reduction) {
    int size;
    MPI_Datatype type = datatype_of(dtype, &size);
    MPI_Op op = op_of(reduction);
    if (type == MPI_DATATYPE_NULL || op == MPI_OP_NULL || dtype == FLOWC_BOOL) return FLOWC_MPI_BAD_TYPE;
    if (!initialized()) return FLOWC_MPI_NOT_INITIALIZED;
    int64_t start = now();
    int slot = 0;
    for (int64_t done = 0; done < count || (count == 0 && done == 0); done += PIECE) {
        int64_t piece = count - done < PIECE ? count - done : PIECE;
        while (slot < IN_FLIGHT && in_flight[slot].buffer) slot++;
        if (slot == IN_FLIGHT) return FLOWC_MPI_TOO_MANY;
        int status = MPI_Iallreduce(MPI_IN_PLACE, (char *)buffer + done * size, (int)piece, type, op, MPI_COMM_WORLD,
                                    &in_flight[slot].request);
        if (status != MPI_SUCCESS) return status;
        in_flight[slot].buffer = buffer;
        if (count == 0) break;
    }
    nanoseconds += now() - start;
    calls += 1;
    bytes += count * size;
    return 0;
}

int32_t flowc_mpi_wait(void *buffer) {
    int64_t start = now();
    int found = 0;
    for (int slot = 0; slot < IN_FLIGHT; slot++) {
        if (in_flight[slot].buffer != buffer) continue;
        found = 1;
        in_flight[slot].buffer = 0;
        int status = MPI_Wait(&in_flight[slot].request, MPI_STATUS_IGNORE);
        if (status != MPI_SUCCESS) return status;
    }
    nanoseconds += now() - start;
    return found ? 0 : FLOWC_MPI_NOT_STARTED;
}

/* One turn of MPI's progress engine, through a test of the oldest request in flight (any request's
 * test advances them all); FLOWC_MPI_PROGRESS=0 in the environment turns it off, for comparisons. */
void flowc_mpi_progress(void) {
    static int enabled = -1;
    if (enabled < 0) {
        const char *setting = getenv("FLOWC_MPI_PROGRESS");
        enabled = !(setting && setting[0] == '0');
    }
    if (!enabled) return;
    for (int slot = 0; slot < IN_FLIGHT; slot++) {
        if (in_flight[slot].buffer && in_flight[slot].request != MPI_REQUEST_NULL) {
            int flag = 0;
            MPI_Test(&in_flight[slot].request, &flag, MPI_STATUS_IGNORE);
            return;
        }
    }
}

int32_t flowc_mpi_bcast(void *buffer, int64_t count, int32_t dtype, int32_t root) {
    int size, ranks;
    MPI_Datatype type = datatype_of(dtype, &size);
    if (type == MPI_DATATYPE_NULL) return FLOWC_MPI_BAD_TYPE;
    if (!initialized()) return FLOWC_MPI_NOT_INITIALIZED;
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    if (root < 0 || root >= ranks) return FLOWC_MPI_BAD_ROOT;
    int64_t start = now();
    for (int64_t done = 0; done < count; done += PIECE) {
        int64_t piece = count - done < PIECE ? count - done : PIECE;
        int status = MPI_Bcast((char *)buffer + done * size, (int)piece, type, root, MPI_COMM_WORLD);
        if (status != MPI_SUCCESS) return status;
    }
    nanoseconds += now() - start;
    calls += 1;
    bytes += count * size;
    return 0;
}

/* The counters since the process started (or the last reset): calls, bytes, nanoseconds in MPI. */
void flowc_mpi_stats(int64_t out[3], int32_t reset) {
    out[0] = calls;
    out[1] = bytes;
    out[2] = nanoseconds;
    if (reset) calls = bytes = nanoseconds = 0;
}
