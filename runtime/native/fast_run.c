/* _fast_run: Session.run's repeated call, below Python.
 *
 * Note [the fast run]
 * A training loop calls sess.run([loss, train], {x: xs, y: ys}) thousands of times with the
 * same fetches, the same feed keys and the same shapes. The Python path then spends most of
 * its time looking things up again: the plan, each feed's checks, each variable's buffer, the
 * layout for these shapes, a result per output, the pointer list: about 8 us, a quarter of the
 * softmax-regression step. A FastRun holds what those lookups find, for one plan, and does the
 * rest in C in about 1 us: it checks the feeds and variables (an exact ndarray of the dtype,
 * native byte order, C-contiguous, aligned, the very shape of a known layout), counts the
 * random ops' run, makes the outputs, writes the pointers and calls the entry point with the
 * GIL released.
 *
 * It never decides anything the Python path would decide differently: whatever it does not
 * recognise (another fetch structure, a Python list fed, a new batch size, an uninitialized
 * variable, a layout busy in another thread) returns NotImplemented, and Session.run takes
 * the Python path, which converts, explains or plans. Only plans whose updates are all
 * written in place qualify, so nothing is left to store after the call. The Python side:
 * Session._refresh_fast (compiler/session.py) and NativeExecutable.fast_run (compiler/native.py).
 * A FastRun is also callable with the feeds as positional arguments, `fast(*feeds)`: a jitted
 * function's repeated call (Note [the jitted call] in compiler/jit.py) is that one C call.
 *
 * A plan that updates variables with use_locking holds their locks across the whole run, as the
 * Python path does (Note [use_locking] in compiler/session.py): a FastRun takes them, in the order
 * given, before it reads a variable, and lets them go after its last write.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <stdint.h>

typedef int32_t (*entry_fn)(uint64_t *buffers, int64_t *dims);

enum { MAX_LAYOUTS = 8, MAX_RANK = 32 };

/* What a run gives back (runtime/fast_run.py names them too). */
enum { ANSWER_ONE, ANSWER_LIST, ANSWER_TUPLE, ANSWER_NONE };

typedef struct {
    npy_intp *arg_dims;    /* every argument's shape, concatenated */
    npy_intp *result_dims; /* every result's shape, concatenated */
    char *result_small;    /* per result: np.empty will do (else the caching allocator) */
    PyObject *result_shapes; /* per result: its shape as a tuple, for the allocator */
    uint64_t *buffers;
    int64_t *dims;
    uint64_t arena;
    int64_t step;        /* this run's count of random ops' runs: read by the kernels during the call */
    PyObject *acquire, *release; /* the layout's lock: its arena and dims vector are shared */
    PyObject *layout;            /* the Python ShapeLayout: keeps all of the above alive */
} Layout;

typedef struct {
    PyObject_HEAD
    entry_fn entry;
    PyObject *owner;     /* what keeps `entry`'s code loaded (Note [unloading compiled code] in loader.py) */
    PyObject *lock_acquire, *lock_release; /* tuples: the bound methods of the variables' locks, in order */
    Py_ssize_t n_feeds, n_args, n_results, n_fetched;
    PyObject *feed_keys; /* tuple: the user's feed keys, in argument order */
    PyObject *variables; /* tuple: the variable ops read after the feeds */
    PyObject *values;    /* the Session's dict of variable values */
    PyObject *counter;   /* the Session's run counter of random ops (a 0-d int64 array), or NULL */
    Py_ssize_t *arg_types, *arg_ranks, *result_types, *result_ranks; /* numpy type numbers and ranks */
    Py_ssize_t *donors;  /* per result: the argument written in place, or -1 */
    char *arg_written;   /* per argument: some result is written into it */
    PyObject *result_dtypes; /* tuple of numpy dtypes */
    Py_ssize_t error_slot;
    Py_ssize_t *picks;   /* per element of the answer: its result, or -1 for None (an op) */
    Py_ssize_t n_picks;
    int answer;          /* ANSWER_ONE: results[picks[0]] itself; a list; a tuple; None (ops only) */
    PyObject *on_error;  /* on_error(status, index, layout): raises the run-time error */
    PyObject *allocate;  /* allocate(shape, dtype): an array from the caching allocator */
    Layout layouts[MAX_LAYOUTS];
    int n_layouts;
} FastRun;

static void free_layout(Layout *l) {
    PyMem_Free(l->arg_dims);
    PyMem_Free(l->result_dims);
    PyMem_Free(l->result_small);
    Py_XDECREF(l->result_shapes);
    Py_XDECREF(l->acquire);
    Py_XDECREF(l->release);
    Py_XDECREF(l->layout);
    memset(l, 0, sizeof *l);
}

static void FastRun_dealloc(FastRun *self) {
    for (int i = 0; i < self->n_layouts; i++)
        free_layout(&self->layouts[i]);
    Py_XDECREF(self->feed_keys);
    Py_XDECREF(self->variables);
    Py_XDECREF(self->values);
    Py_XDECREF(self->counter);
    Py_XDECREF(self->result_dtypes);
    Py_XDECREF(self->on_error);
    Py_XDECREF(self->allocate);
    Py_XDECREF(self->lock_acquire);
    Py_XDECREF(self->lock_release);
    Py_XDECREF(self->owner); /* may unload the code: nothing here calls it any more */
    PyMem_Free(self->arg_types);
    PyMem_Free(self->arg_ranks);
    PyMem_Free(self->result_types);
    PyMem_Free(self->result_ranks);
    PyMem_Free(self->donors);
    PyMem_Free(self->arg_written);
    PyMem_Free(self->picks);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* -- building: everything here is checked, since Python hands it over once ------------------ */

static int read_sizes(PyObject *seq, Py_ssize_t n, const char *what, Py_ssize_t *out) {
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != n) {
        PyErr_Format(PyExc_ValueError, "FastRun: %s must be a tuple of %zd ints", what, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t v = PyLong_AsSsize_t(PyTuple_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred())
            return -1;
        out[i] = v;
    }
    return 0;
}

/* FastRun(entry, feed_keys, variables, values, arg_types, arg_ranks, result_dtypes,
 *         result_ranks, donors, n_fetched, error_slot, picks, answer, on_error, allocate, counter, owner,
 *         locks):
 * the arguments are the feeds, then the variables, then (where counter is not None) the count;
 * `owner` is kept as long as the FastRun, since `entry` is an address in the code it keeps loaded;
 * `locks` is a tuple of locks that every run holds throughout, taken in its order. */
static int FastRun_init(FastRun *self, PyObject *args, PyObject *kwargs) {
    unsigned long long entry;
    PyObject *feed_keys, *variables, *values, *arg_types, *arg_ranks, *result_dtypes, *result_ranks;
    PyObject *donors, *picks, *on_error, *allocate, *counter, *owner, *locks;
    Py_ssize_t n_fetched, error_slot;
    int answer;
    if (self->entry || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "FastRun takes positional arguments, once");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "KO!O!O!OOO!OOnnO!iOOOOO!", &entry, &PyTuple_Type, &feed_keys, &PyTuple_Type,
                          &variables, &PyDict_Type, &values, &arg_types, &arg_ranks, &PyTuple_Type,
                          &result_dtypes, &result_ranks, &donors, &n_fetched, &error_slot, &PyTuple_Type,
                          &picks, &answer, &on_error, &allocate, &counter, &owner, &PyTuple_Type, &locks))
        return -1;
    if (!entry || owner == Py_None || answer < ANSWER_ONE || answer > ANSWER_NONE || !PyCallable_Check(on_error) || !PyCallable_Check(allocate)) {
        PyErr_SetString(PyExc_ValueError, "FastRun: bad entry point, owner, answer kind or callbacks");
        return -1;
    }
    if (counter != Py_None &&
        !(PyArray_CheckExact(counter) && PyArray_TYPE((PyArrayObject *)counter) == NPY_INT64 &&
          PyArray_NDIM((PyArrayObject *)counter) == 0 && PyArray_ISNOTSWAPPED((PyArrayObject *)counter) &&
          PyArray_ISCARRAY((PyArrayObject *)counter))) {
        PyErr_SetString(PyExc_ValueError, "FastRun: the counter must be a writeable 0-d int64 array");
        return -1;
    }
    Py_ssize_t n_args = PyTuple_GET_SIZE(feed_keys) + PyTuple_GET_SIZE(variables) + (counter != Py_None);
    Py_ssize_t n_results = PyTuple_GET_SIZE(result_dtypes);
    self->entry = (entry_fn)(uintptr_t)entry;
    self->n_feeds = PyTuple_GET_SIZE(feed_keys);
    self->n_args = n_args;
    self->n_results = n_results;
    self->n_fetched = n_fetched;
    self->error_slot = error_slot;
    self->answer = answer;
    self->n_picks = PyTuple_GET_SIZE(picks);
    Py_INCREF(feed_keys), self->feed_keys = feed_keys;
    Py_INCREF(variables), self->variables = variables;
    Py_INCREF(values), self->values = values;
    Py_INCREF(result_dtypes), self->result_dtypes = result_dtypes;
    Py_INCREF(on_error), self->on_error = on_error;
    Py_INCREF(allocate), self->allocate = allocate;
    Py_INCREF(owner), self->owner = owner;
    Py_ssize_t n_locks = PyTuple_GET_SIZE(locks);
    if (!(self->lock_acquire = PyTuple_New(n_locks)) || !(self->lock_release = PyTuple_New(n_locks)))
        return -1;
    for (Py_ssize_t i = 0; i < n_locks; i++) {
        PyObject *acquire = PyObject_GetAttrString(PyTuple_GET_ITEM(locks, i), "acquire");
        PyObject *release = acquire ? PyObject_GetAttrString(PyTuple_GET_ITEM(locks, i), "release") : NULL;
        if (!release) {
            Py_XDECREF(acquire);
            if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_TypeError, "FastRun: locks must be a tuple of locks");
            }
            return -1;
        }
        PyTuple_SET_ITEM(self->lock_acquire, i, acquire);
        PyTuple_SET_ITEM(self->lock_release, i, release);
    }
    self->counter = counter == Py_None ? NULL : Py_NewRef(counter);
    self->arg_types = PyMem_Calloc(n_args + 1, sizeof(Py_ssize_t));
    self->arg_ranks = PyMem_Calloc(n_args + 1, sizeof(Py_ssize_t));
    self->arg_written = PyMem_Calloc(n_args + 1, 1);
    self->result_types = PyMem_Calloc(n_results + 1, sizeof(Py_ssize_t));
    self->result_ranks = PyMem_Calloc(n_results + 1, sizeof(Py_ssize_t));
    self->donors = PyMem_Calloc(n_results + 1, sizeof(Py_ssize_t));
    self->picks = PyMem_Calloc(self->n_picks + 1, sizeof(Py_ssize_t));
    if (!self->arg_types || !self->arg_ranks || !self->arg_written || !self->result_types || !self->result_ranks ||
        !self->donors || !self->picks) {
        PyErr_NoMemory();
        return -1;
    }
    if (read_sizes(arg_types, n_args, "arg_types", self->arg_types) ||
        read_sizes(arg_ranks, n_args, "arg_ranks", self->arg_ranks) ||
        read_sizes(result_ranks, n_results, "result_ranks", self->result_ranks) ||
        read_sizes(donors, n_results, "donors", self->donors) ||
        read_sizes(picks, self->n_picks, "picks", self->picks))
        return -1;
    for (Py_ssize_t i = 0; i < n_args; i++)
        if (self->arg_ranks[i] < 0 || self->arg_ranks[i] > MAX_RANK) {
            PyErr_SetString(PyExc_ValueError, "FastRun: an argument's rank out of range");
            return -1;
        }
    if (self->counter && (self->arg_types[n_args - 1] != NPY_INT64 || self->arg_ranks[n_args - 1] != 0)) {
        PyErr_SetString(PyExc_ValueError, "FastRun: the count's argument must be a 0-d int64");
        return -1;
    }
    for (Py_ssize_t j = 0; j < n_results; j++) {
        PyObject *dtype = PyTuple_GET_ITEM(result_dtypes, j);
        if (!PyArray_DescrCheck(dtype)) {
            PyErr_SetString(PyExc_TypeError, "FastRun: result_dtypes must be numpy dtypes");
            return -1;
        }
        self->result_types[j] = ((PyArray_Descr *)dtype)->type_num;
        Py_ssize_t donor = self->donors[j];
        if (donor >= n_args || self->result_ranks[j] > MAX_RANK || self->result_ranks[j] < 0) {
            PyErr_SetString(PyExc_ValueError, "FastRun: a donor or rank out of range");
            return -1;
        }
        if (donor >= 0 && (self->arg_types[donor] != self->result_types[j] ||
                           self->arg_ranks[donor] != self->result_ranks[j])) {
            PyErr_SetString(PyExc_ValueError, "FastRun: a result written into an argument of another type");
            return -1;
        }
        if (donor >= 0)
            self->arg_written[donor] = 1;
        else if (j >= n_fetched) {
            PyErr_SetString(PyExc_ValueError, "FastRun: every update must be written in place");
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < self->n_picks; i++)
        if (self->picks[i] >= n_fetched) {
            PyErr_SetString(PyExc_ValueError, "FastRun: a pick out of range");
            return -1;
        }
    if ((answer == ANSWER_ONE && (self->n_picks != 1 || self->picks[0] < 0)) ||
        (answer == ANSWER_NONE && self->n_picks)) {
        PyErr_SetString(PyExc_ValueError, "FastRun: one result or None picks one result or none");
        return -1;
    }
    return 0;
}

static npy_intp *shape_array(PyObject *shapes, Py_ssize_t n, const Py_ssize_t *ranks, const char *what) {
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        total += ranks[i];
    npy_intp *out = PyMem_Calloc(total + 1, sizeof(npy_intp));
    if (!out) {
        PyErr_NoMemory();
        return NULL;
    }
    if (!PyTuple_Check(shapes) || PyTuple_GET_SIZE(shapes) != n)
        goto bad;
    for (Py_ssize_t i = 0, at = 0; i < n; i++) {
        PyObject *shape = PyTuple_GET_ITEM(shapes, i);
        if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) != ranks[i])
            goto bad;
        for (int a = 0; a < ranks[i]; a++) {
            Py_ssize_t d = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, a));
            if (d < 0)
                goto bad;
            out[at++] = d;
        }
    }
    return out;
bad:
    PyMem_Free(out);
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "FastRun.add_layout: %s must be %zd shapes of the right ranks", what, n);
    return NULL;
}

/* add_layout(layout, arg_shapes, result_shapes, result_small, buffers, dims, arena, lock) */
static PyObject *FastRun_add_layout(FastRun *self, PyObject *args) {
    PyObject *layout, *arg_shapes, *result_shapes, *result_small, *lock;
    unsigned long long buffers, dims, arena;
    if (!PyArg_ParseTuple(args, "OO!O!O!KKKO", &layout, &PyTuple_Type, &arg_shapes, &PyTuple_Type, &result_shapes,
                          &PyTuple_Type, &result_small, &buffers, &dims, &arena, &lock))
        return NULL;
    if (self->n_layouts == MAX_LAYOUTS) {
        PyErr_SetString(PyExc_ValueError, "FastRun.add_layout: no room for another layout");
        return NULL;
    }
    if (!buffers || !dims || PyTuple_GET_SIZE(result_small) != self->n_results) {
        PyErr_SetString(PyExc_ValueError, "FastRun.add_layout: null buffers or dims, or a bad result_small");
        return NULL;
    }
    Layout l = {0};
    l.arg_dims = shape_array(arg_shapes, self->n_args, self->arg_ranks, "arg_shapes");
    l.result_dims = l.arg_dims ? shape_array(result_shapes, self->n_results, self->result_ranks, "result_shapes") : NULL;
    l.result_small = PyMem_Calloc(self->n_results + 1, 1);
    l.acquire = PyObject_GetAttrString(lock, "acquire");
    l.release = l.acquire ? PyObject_GetAttrString(lock, "release") : NULL;
    if (!l.arg_dims || !l.result_dims || !l.result_small || !l.acquire || !l.release) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        free_layout(&l);
        return NULL;
    }
    for (Py_ssize_t j = 0; j < self->n_results; j++)
        l.result_small[j] = (char)PyObject_IsTrue(PyTuple_GET_ITEM(result_small, j));
    Py_INCREF(result_shapes), l.result_shapes = result_shapes;
    Py_INCREF(layout), l.layout = layout;
    l.buffers = (uint64_t *)(uintptr_t)buffers;
    l.dims = (int64_t *)(uintptr_t)dims;
    l.arena = arena;
    self->layouts[self->n_layouts++] = l;
    Py_RETURN_NONE;
}

static PyObject *FastRun_layouts(FastRun *self, void *closure) {
    (void)closure;
    return PyLong_FromLong(self->n_layouts);
}

/* -- calling ------------------------------------------------------------------------------- */

/* The argument fits as the compiled code needs it (what Session._checked lets through untouched). */
static int fits(FastRun *self, PyObject *value, Py_ssize_t i) {
    if (!PyArray_CheckExact(value))
        return 0;
    PyArrayObject *a = (PyArrayObject *)value;
    int need = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | (self->arg_written[i] ? NPY_ARRAY_WRITEABLE : 0);
    int type = PyArray_TYPE(a); /* long long is int64 as long is, under another number */
    return (type == self->arg_types[i] || PyArray_EquivTypenums(type, (int)self->arg_types[i])) &&
           PyArray_ISNOTSWAPPED(a) &&
           (PyArray_FLAGS(a) & need) == need && PyArray_NDIM(a) == self->arg_ranks[i];
}

/* Whether a buffer the run writes (a donated argument) overlaps another argument's bytes: the memory
 * plan assumes distinct buffers, so such a run takes the Python path, which copies the donated one
 * (Note [donated arguments of a jitted call] in compiler/jit.py). Every argument is contiguous here. */
static int written_overlaps(FastRun *self, PyObject **values) {
    for (Py_ssize_t i = 0; i < self->n_args; i++) {
        if (!self->arg_written[i])
            continue;
        const char *a = PyArray_BYTES((PyArrayObject *)values[i]);
        npy_intp a_bytes = PyArray_NBYTES((PyArrayObject *)values[i]);
        for (Py_ssize_t j = 0; j < self->n_args && a_bytes; j++) {
            const char *b = PyArray_BYTES((PyArrayObject *)values[j]);
            npy_intp b_bytes = PyArray_NBYTES((PyArrayObject *)values[j]);
            if (j != i && b_bytes && a < b + b_bytes && b < a + a_bytes)
                return 1;
        }
    }
    return 0;
}

static Layout *layout_of(FastRun *self, PyObject **values) {
    for (int k = 0; k < self->n_layouts; k++) {
        const npy_intp *want = self->layouts[k].arg_dims;
        int same = 1;
        for (Py_ssize_t i = 0; i < self->n_args && same; i++) {
            const npy_intp *have = PyArray_DIMS((PyArrayObject *)values[i]);
            for (int a = 0; a < self->arg_ranks[i]; a++)
                if (have[a] != *want++) {
                    same = 0;
                    break;
                }
        }
        if (same)
            return &self->layouts[k];
    }
    return NULL;
}

static PyObject *new_result(FastRun *self, Layout *l, Py_ssize_t j, const npy_intp *shape) {
    PyObject *dtype = PyTuple_GET_ITEM(self->result_dtypes, j);
    if (l->result_small[j]) {
        Py_INCREF(dtype); /* PyArray_Empty steals it */
        return PyArray_Empty(self->result_ranks[j], (npy_intp *)shape, (PyArray_Descr *)dtype, 0);
    }
    PyObject *array = PyObject_CallFunctionObjArgs(self->allocate, PyTuple_GET_ITEM(l->result_shapes, j), dtype, NULL);
    if (array && !(PyArray_Check(array) && PyArray_IS_C_CONTIGUOUS((PyArrayObject *)array) &&
                   PyArray_TYPE((PyArrayObject *)array) == self->result_types[j] &&
                   PyArray_SIZE((PyArrayObject *)array) == PyArray_MultiplyList((npy_intp *)shape,
                                                                                 self->result_ranks[j]))) {
        Py_DECREF(array);
        PyErr_SetString(PyExc_RuntimeError, "FastRun: the allocator returned a buffer of another size or dtype");
        return NULL;
    }
    return array;
}

static PyObject *answer(FastRun *self, PyObject **results) {
    if (self->answer == ANSWER_NONE)
        Py_RETURN_NONE;
    if (self->answer == ANSWER_ONE) {
        PyObject *one = results[self->picks[0]];
        Py_INCREF(one);
        return one;
    }
    PyObject *out = self->answer == ANSWER_LIST ? PyList_New(self->n_picks) : PyTuple_New(self->n_picks);
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < self->n_picks; i++) {
        PyObject *item = self->picks[i] < 0 ? Py_None : results[self->picks[i]];
        Py_INCREF(item);
        if (self->answer == ANSWER_LIST)
            PyList_SET_ITEM(out, i, item);
        else
            PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

/* The run's answer, or NotImplemented (no exception set) where the Python path must take it. The feeds
 * are `positional`'s items in order where it is not NULL (a jitted call), else `feed_dict`'s values. */
static PyObject *FastRun_call_feeds(FastRun *self, PyObject *feed_dict, PyObject *positional) {
    enum { SMALL = 16 };
    PyObject *small_values[SMALL], *small_results[SMALL];
    Py_ssize_t n_args = self->n_args, n_results = self->n_results;
    PyObject **values = n_args <= SMALL ? small_values : PyMem_Calloc(n_args, sizeof(PyObject *));
    PyObject **results = n_results <= SMALL ? small_results : PyMem_Calloc(n_results, sizeof(PyObject *));
    PyObject *out = NULL;
    Py_ssize_t held = 0, made = 0, taken = 0;
    int locked = 0;
    Layout *l = NULL;
    PyObject *got;
    if (!values || !results) {
        PyErr_NoMemory();
        goto done;
    }
    /* The variables' locks first, before any variable is read. A blocking acquire lets the GIL go. */
    for (; taken < PyTuple_GET_SIZE(self->lock_acquire); taken++) {
        got = PyObject_CallNoArgs(PyTuple_GET_ITEM(self->lock_acquire, taken));
        if (!got)
            goto done; /* interrupted by a signal whose handler raised */
        Py_DECREF(got);
    }
    /* Strong references: the allocator below runs Python, which might touch the dicts. */
    for (; held < n_args; held++) {
        PyObject *value = held < self->n_feeds
                              ? (positional ? PyTuple_GET_ITEM(positional, held)
                                            : PyDict_GetItemWithError(feed_dict, PyTuple_GET_ITEM(self->feed_keys, held)))
                          : held < PyTuple_GET_SIZE(self->variables) + self->n_feeds
                              ? PyDict_GetItemWithError(self->values,
                                                        PyTuple_GET_ITEM(self->variables, held - self->n_feeds))
                              : self->counter;
        if (!value || !fits(self, value, held))
            goto fall_back; /* a missing variable, or a feed the Python path must convert or explain */
        Py_INCREF(value);
        values[held] = value;
    }
    if (written_overlaps(self, values))
        goto fall_back; /* a donated buffer that another argument shares */
    l = layout_of(self, values);
    if (!l)
        goto fall_back; /* shapes not seen yet: the Python path plans them */
    got = PyObject_CallOneArg(l->acquire, Py_False);
    if (!got)
        goto done;
    locked = got == Py_True;
    Py_DECREF(got);
    if (!locked)
        goto fall_back; /* another thread runs this layout: the Python path uses copies */
    const npy_intp *shape = l->result_dims;
    for (; made < n_results; made++) {
        Py_ssize_t donor = self->donors[made];
        if (donor >= 0) {
            Py_INCREF(values[donor]);
            results[made] = values[donor];
        } else if (!(results[made] = new_result(self, l, made, shape)))
            goto done;
        shape += self->result_ranks[made];
    }
    uint64_t *buffers = l->buffers;
    for (Py_ssize_t i = 0; i < n_args; i++)
        *buffers++ = (uint64_t)(uintptr_t)PyArray_DATA((PyArrayObject *)values[i]);
    if (self->counter) { /* as the Python path: this run's count is passed, the Session's goes up */
        int64_t *count = PyArray_DATA((PyArrayObject *)self->counter);
        l->step = (*count)++;
        l->buffers[n_args - 1] = (uint64_t)(uintptr_t)&l->step;
    }
    for (Py_ssize_t j = 0; j < n_results; j++)
        *buffers++ = (uint64_t)(uintptr_t)PyArray_DATA((PyArrayObject *)results[j]);
    *buffers = l->arena;
    int64_t *dims = l->dims;
    dims[self->error_slot] = 0;
    int32_t status;
    Py_BEGIN_ALLOW_THREADS
    status = self->entry(l->buffers, dims);
    Py_END_ALLOW_THREADS
    if (status) {
        PyObject *raised = PyObject_CallFunction(self->on_error, "iLO", (int)status,
                                                 (long long)dims[self->error_slot + 1], l->layout);
        Py_XDECREF(raised);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "FastRun: on_error returned instead of raising");
        goto done;
    }
    out = answer(self, results);
    goto done;
fall_back:
    if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) { /* TypeError: an unhashable key */
        PyErr_Clear();
        out = Py_NewRef(Py_NotImplemented);
    }
done:
    if (locked || taken) {
        PyObject *type, *value, *traceback; /* keep an error raised above across the releases */
        PyErr_Fetch(&type, &value, &traceback);
        /* The layout's lock first, so a thread waiting for the variables then finds it free. */
        PyObject *ok = locked ? PyObject_CallNoArgs(l->release) : NULL;
        Py_XDECREF(ok);
        while (taken > 0) {
            ok = PyObject_CallNoArgs(PyTuple_GET_ITEM(self->lock_release, --taken));
            Py_XDECREF(ok);
        }
        PyErr_Clear(); /* a release cannot fail for the lock's holder */
        if (type)
            PyErr_Restore(type, value, traceback);
    }
    for (Py_ssize_t j = 0; j < made; j++)
        Py_DECREF(results[j]);
    for (Py_ssize_t i = 0; i < held; i++)
        Py_DECREF(values[i]);
    if (values != small_values)
        PyMem_Free(values);
    if (results != small_results)
        PyMem_Free(results);
    return out;
}

/* fast(*feeds): the run with the feeds given in argument order (@fc.jit's repeated call, compiler/jit.py),
 * or NotImplemented where the Python path must take it (another count of arguments among them). */
static PyObject *FastRun_call(FastRun *self, PyObject *args, PyObject *kwargs) {
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "FastRun takes the feeds as positional arguments");
        return NULL;
    }
    if (!self->entry || PyTuple_GET_SIZE(args) != self->n_feeds)
        return Py_NewRef(Py_NotImplemented);
    return FastRun_call_feeds(self, NULL, args);
}

static PyMethodDef FastRun_methods[] = {
    {"add_layout", (PyCFunction)FastRun_add_layout, METH_VARARGS,
     "add_layout(layout, arg_shapes, result_shapes, result_small, buffers, dims, arena, lock)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FastRun_getset[] = {
    {"layouts", (getter)FastRun_layouts, NULL, "how many layouts this FastRun knows", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FastRunType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_fast_run.FastRun",
    .tp_basicsize = sizeof(FastRun),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One Session plan's repeated run, below Python (Note [the fast run]).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastRun_init,
    .tp_call = (ternaryfunc)FastRun_call,
    .tp_dealloc = (destructor)FastRun_dealloc,
    .tp_methods = FastRun_methods,
    .tp_getset = FastRun_getset,
};

/* -- the table: plans by fetch structure and feed keys ------------------------------------- */

/* (type(fetches), fetches as a tuple, the feed keys as a tuple), or NULL with an exception set.
 * A nested fetch structure holds a list or dict and so fails to hash: the Python path. */
static PyObject *key_of(PyObject *fetches, PyObject *feed_dict) {
    PyObject *items = PyList_CheckExact(fetches) ? PyList_AsTuple(fetches) : Py_NewRef(fetches);
    if (!items)
        return NULL;
    PyObject *feeds;
    if (feed_dict == Py_None)
        feeds = PyTuple_New(0);
    else {
        feeds = PyTuple_New(PyDict_GET_SIZE(feed_dict));
        Py_ssize_t pos = 0, i = 0;
        PyObject *k, *v;
        while (feeds && PyDict_Next(feed_dict, &pos, &k, &v))
            PyTuple_SET_ITEM(feeds, i++, Py_NewRef(k));
    }
    PyObject *key = feeds ? PyTuple_Pack(3, (PyObject *)Py_TYPE(fetches), items, feeds) : NULL;
    Py_DECREF(items);
    Py_XDECREF(feeds);
    return key;
}

/* key(fetches, feed_dict): the table key of this run, or None where the fast run never applies. */
static PyObject *fast_key(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "key(fetches, feed_dict)");
        return NULL;
    }
    if (args[1] != Py_None && !PyDict_CheckExact(args[1]))
        Py_RETURN_NONE; /* run() leaves other mappings to the Python path */
    PyObject *key = key_of(args[0], args[1]);
    if (key && PyObject_Hash(key) == -1) {
        Py_CLEAR(key);
    }
    if (!key) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return key;
}

/* run(table, fetches, feed_dict): the answer of the FastRun the table holds for this run, or
 * NotImplemented where there is none or it does not apply. */
static PyObject *fast_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "run(table: dict, fetches, feed_dict)");
        return NULL;
    }
    PyObject *feed_dict = args[2];
    if (feed_dict != Py_None && !PyDict_CheckExact(feed_dict))
        return Py_NewRef(Py_NotImplemented); /* a mapping of another type: the Python path */
    PyObject *key = key_of(args[1], feed_dict);
    PyObject *fast = key ? PyDict_GetItemWithError(args[0], key) : NULL;
    Py_XDECREF(key);
    if (!fast || Py_TYPE(fast) != &FastRunType || !((FastRun *)fast)->entry) { /* entry: initialized */
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_TypeError))
            return NULL;
        PyErr_Clear();
        return Py_NewRef(Py_NotImplemented);
    }
    PyObject *feeds = feed_dict == Py_None ? PyDict_New() : Py_NewRef(feed_dict);
    if (!feeds)
        return NULL;
    Py_INCREF(fast); /* the call may run Python that changes the table */
    PyObject *out = FastRun_call_feeds((FastRun *)fast, feeds, NULL);
    Py_DECREF(fast);
    Py_DECREF(feeds);
    return out;
}

static PyMethodDef module_methods[] = {
    {"key", (PyCFunction)(void (*)(void))fast_key, METH_FASTCALL, "key(fetches, feed_dict): the table key, or None"},
    {"run", (PyCFunction)(void (*)(void))fast_run, METH_FASTCALL,
     "run(table, fetches, feed_dict): the FastRun's answer, or NotImplemented"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fast_run", "Session.run's repeated call, below Python (Note [the fast run]).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fast_run(void) {
    import_array();
    if (PyType_Ready(&FastRunType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (!module)
        return NULL;
    if (PyModule_AddObjectRef(module, "FastRun", (PyObject *)&FastRunType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
