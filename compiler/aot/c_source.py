"""The C text of an exported library: its header NAME.h and the C API around the compiled entry point.

The entry point (codegen/llvm/module.py) takes buffers and a dims vector;
the generated C computes that vector from the input dims (Note [dims as
affine formulas] in dims.py), lays the temps out in the context's arena with
the memory plan's own greedy rule (MemoryPlan.layout in passes/memory.py),
and keeps the result per context until other dims come. Most of it is one
fixed template; the tables above it are the function's.
"""

from __future__ import annotations

from .interface import ERROR_CODES, Interface, Tensor


def header(api: Interface) -> str:
    name, upper = api.name, api.name.upper()
    lines = [f"/* {name}.h: a function compiled by flowc ({api.source}), as a plain C API.",
             " *",
             f" * Link with -l{name} (lib{name}.so); the libraries it needs lie beside it and are found through",
             " * its $ORIGIN rpath. Built for the CPU of the machine that exported it.",
             " *",
             " * Dims: -1 is a dim known only at run time; NAME_run and NAME_output_dims take every input's",
             " * dims, in input order, concatenated. Buffers are C-contiguous (row-major) and caller-owned.",
             " * A context holds scratch memory and the variables; use one context per thread (contexts run",
             " * concurrently). The kernels use the cores as flowc's Session does ($FLOWC_NUM_THREADS, else",
             " * the CPUs this process may run on). NAME_run never aborts or prints: it returns 0 or an",
             " * error code below, and NAME_error says what went wrong. A run stopped by an index out of range",
             " * may leave the variables partly updated, as the Session's run does.",
             " */",
             f"#ifndef {upper}_H", f"#define {upper}_H", "", "#include <stdint.h>", "",
             "#ifdef __cplusplus", 'extern "C" {', "#endif", ""]
    lines += _tensor_docs("Inputs", api.inputs) + _tensor_docs("Outputs", api.outputs)
    lines += _tensor_docs("Variables (NAME_variable(ctx, i), read and write; each run updates them in place)",
                          api.variables)
    lines += [f"#define {name}_NUM_INPUTS {len(api.inputs)}",
              f"#define {name}_NUM_OUTPUTS {len(api.outputs)}",
              f"#define {name}_NUM_VARIABLES {len(api.variables)}",
              f"#define {name}_NUM_INPUT_DIMS {sum(len(t.shape) for t in api.inputs)}  /* length of input_dims */",
              f"#define {name}_NUM_OUTPUT_DIMS {sum(len(t.shape) for t in api.outputs)}  /* length of output_dims */",
              "", "/* Return codes */", f"#define {name}_OK 0"]
    lines += [f"#define {name}_ERROR_{suffix} {value}  /* {meaning} */" for suffix, value, meaning in ERROR_CODES]
    lines += ["", f"typedef struct {name}_context {name}_context;", "",
              f"/* NULL on failure; its own scratch memory and variables (initialized to the exported values). */",
              f"{name}_context *{name}_create(void);",
              f"void {name}_destroy({name}_context *ctx);",
              "/* input_dims: every input's dims, in input order, concatenated (rank known from the header).",
              " * Writes every output's dims, in output order, concatenated; returns 0 or an error code. */",
              f"int {name}_output_dims({name}_context *ctx, const int64_t *input_dims, int64_t *output_dims);",
              "/* inputs[i], outputs[j]: caller-owned buffers of the sizes the dims give; returns 0 or an error",
              " * code. */",
              f"int {name}_run({name}_context *ctx, const void *const *inputs, const int64_t *input_dims, "
              "void *const *outputs);",
              f"const char *{name}_error(const {name}_context *ctx);  /* the last error's message, \"\" if none */",
              f"void *{name}_variable({name}_context *ctx, int index); /* variable buffer, read and write; "
              "NULL if out of range */",
              "", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {upper}_H */", ""]
    return "\n".join(lines).replace("NAME_", f"{name}_")


def _tensor_docs(title: str, tensors: list[Tensor]) -> list[str]:
    if not tensors:
        return [f"/* {title}: none */", ""]
    lines = [f"/* {title}:"]
    for i, t in enumerate(tensors):
        dims = ", ".join("-1" if d is None else str(d) for d in t.shape)
        lines.append(f" *   {i}: {t.name}  {t.dtype.name} ({t.c_type}), rank {len(t.shape)}, dims [{dims}]")
    return lines + [" */", ""]


def implementation(api: Interface) -> str:
    """The C source of the API (compiled with the library's other objects)."""
    return _TEMPLATE.replace("@TABLES@", _tables(api)).replace("@SLOTS@", _slot_code(api)) \
        .replace("@NAME@", api.name)


def _array(c_type: str, name: str, values: list, size: str | None = None) -> str:
    items = ", ".join(str(v) for v in values) or "0"  # C has no empty arrays: a dummy element
    return f"static const {c_type} {name}[{size or max(len(values), 1)}] = {{{items}}};"


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _tables(api: Interface) -> str:
    dims = api.dims
    input_dims = dims.inputs
    temp_codes = [code for _, codes in api.temps for code in codes]
    temp_starts = [0]
    for _, codes in api.temps:
        temp_starts.append(temp_starts[-1] + len(codes))
    out_codes = [code for codes in api.output_dims for code in codes]
    sources = {"input": 0, "variable": 1, "data": 2, "step": 3}
    sinks = {"output": 0, "variable": 1, "scratch": 2}
    discard_offsets, total = [], 0
    for nbytes in api.discard_bytes:
        discard_offsets.append(total)
        total += (nbytes + 63) // 64 * 64
    scratch = [j for j, s in enumerate(api.result_sinks) if s[0] == "scratch"]
    result_index = [s[1] if s[0] != "scratch" else scratch.index(j) for j, s in enumerate(api.result_sinks)]
    copies = [(scratch.index(j), s[1]) for j, s in enumerate(api.result_sinks) if s[0] == "scratch" and s[1] >= 0]
    lines = [
        f"#define NUM_INPUT_DIMS {len(input_dims)}",
        f"#define NUM_OUTPUT_DIMS {len(out_codes)}",
        f"#define NUM_GROUPS {dims.group_count}",
        f"#define NUM_SLOTS {api.slot_count}",
        f"#define ERROR_SLOT {api.error_slot}",
        f"#define NUM_TEMPS {len(api.temps)}",
        f"#define NUM_ARGS {len(api.arg_sources)}",
        f"#define NUM_RESULTS {len(api.result_sinks)}",
        f"#define NUM_VARIABLES {len(api.variables)}",
        f"#define NUM_KERNELS {len(api.kernel_errors)}",
        f"#define DISCARD_BYTES {total}",
        f"#define FIRST_STEP {api.step}",
        _array("int64_t", "input_static", [d.static if d.static is not None else -1 for d in input_dims]),
        _array("int", "input_group", [d.group if d.group is not None else -1 for d in input_dims]),
        _array("int", "input_slot", [d.slot if d.slot is not None else -1 for d in input_dims]),
        _array("int", "input_of_dim", [d.input for d in input_dims]),
        _array("int", "axis_of_dim", [d.axis for d in input_dims]),
        _array("char *const", "input_names", [_c_string(t.name) for t in api.inputs]),
        _array("int", "nonempty_slots", [slot for slot, _ in dims.nonempty]),
        _array("char *const", "nonempty_ops", [_c_string(op) for _, op in dims.nonempty]),
        f"#define NUM_NONEMPTY {len(dims.nonempty)}",
        _array("int64_t", "temp_itemsize", [size for size, _ in api.temps]),
        _array("int", "temp_start", temp_starts),
        _array("int64_t", "temp_dims", temp_codes),
        _array("int64_t", "temp_lifetime", [step for span in api.lifetimes for step in span]),
        _array("int64_t", "output_dims_code", out_codes),
        _array("int", "arg_kind", [sources[s[0]] for s in api.arg_sources]),
        _array("int64_t", "arg_index", [s[1] if len(s) > 1 else 0 for s in api.arg_sources]),
        _array("int", "result_kind", [sinks[s[0]] for s in api.result_sinks]),
        _array("int", "result_index", result_index),
        f"#define NUM_COPIES {len(copies)}",
        _array("int", "copy_from", [c[0] for c in copies]),
        _array("int", "copy_to", [c[1] for c in copies]),
        _array("int64_t", "discard_offset", discard_offsets),
        _array("int64_t", "variable_offset", api.variable_offsets),
        _array("int64_t", "variable_bytes", [t.nbytes for t in api.variables]),
        _array("char *const", "kernel_errors", [_c_string(text) for text in api.kernel_errors]),
    ]
    return "\n".join(lines)


def _slot_code(api: Interface) -> str:
    lines = []
    for slot, formula in enumerate(api.dims.slots):
        terms = " + ".join([str(formula.constant)] + [f"{c} * groups[{g}]" for g, c in formula.terms])
        lines.append(f"    slots[{slot}] = {terms};")
    return "\n".join(lines) or "    (void)groups;"


_TEMPLATE = r"""/* Generated by flowc: the C API of lib@NAME@.so around its compiled entry point flowc_main. */
#define _POSIX_C_SOURCE 200809L /* posix_memalign */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "@NAME@.h"

/* The compiled function (codegen/llvm/module.py): buffers are the arguments, the results and the
 * scratch arena; dims holds the slots, each temp's arena offset and two error slots. */
extern int32_t flowc_main(void **buffers, int64_t *dims);
extern const unsigned char flowc_export_data[];  /* the embedded values (export_data.S) */
extern void flowc_set_num_threads(int n);         /* this library's own pool (runtime/native/flowc_rt.h) */

/* The pool's thread count: $FLOWC_NUM_THREADS when it is a positive count, read once when the library
 * is loaded (a Session reads it once too, in runtime/options.py), else the CPUs this process may use. */
__attribute__((constructor)) static void read_thread_count(void) {
    const char *text = getenv("FLOWC_NUM_THREADS");
    char *end = NULL;
    long n = text != NULL ? strtol(text, &end, 10) : 0;
    if (text != NULL && end != text && *end == '\0' && n > 0) flowc_set_num_threads(n > 1024 ? 1024 : (int)n);
}

@TABLES@

#define ALIGNMENT 64

struct @NAME@_context {
    char error[512];
    int planned;                        /* dims, offsets and output dims hold those of planned_for */
    int64_t planned_for[NUM_INPUT_DIMS + 1];
    int64_t dims[ERROR_SLOT + 2];      /* the slots, the temps' arena offsets, then the error slots */
    int64_t output_dims[NUM_OUTPUT_DIMS + 1];
    void *arena;
    int64_t arena_bytes;
    void *variables[NUM_VARIABLES + 1];
    void *discard;                      /* results written apart: updates copied after the run, or baked */
    int64_t step;                       /* the run counter of random ops */
};

static int fail(@NAME@_context *ctx, int code, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(ctx->error, sizeof ctx->error, format, args);
    va_end(args);
    return code;
}

static void *aligned_bytes(int64_t n) {
    void *pointer = NULL;
    if (posix_memalign(&pointer, ALIGNMENT, (size_t)((n + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT)) != 0) return NULL;
    return pointer;
}

static int64_t dim_of(int64_t code, const int64_t *slots) { return code >= 0 ? code : slots[-code - 1]; }

static int overlap(int a, int b) {
    return temp_lifetime[2 * a] <= temp_lifetime[2 * b + 1] && temp_lifetime[2 * b] <= temp_lifetime[2 * a + 1];
}

/* MemoryPlan.layout (passes/memory.py): largest first, each temp at the lowest offset that no temp
 * alive at the same time overlaps. Returns the arena's peak. */
static int64_t layout(const int64_t *bytes, int64_t *offsets) {
    int order[NUM_TEMPS + 1], placed[NUM_TEMPS + 1], busy[NUM_TEMPS + 1];
    int64_t peak = 0;
    for (int t = 0; t < NUM_TEMPS; t++) {  /* a stable sort by size, descending */
        int i = t;
        while (i > 0 && bytes[order[i - 1]] < bytes[t]) { order[i] = order[i - 1]; i--; }
        order[i] = t;
    }
    for (int k = 0; k < NUM_TEMPS; k++) {
        int t = order[k], n = 0;
        int64_t size = (bytes[t] > 1 ? bytes[t] : 1), offset = 0;
        size = (size + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        for (int p = 0; p < k; p++) {  /* the placed temps alive with t, by (offset, end) */
            int u = placed[p];
            if (!overlap(u, t)) continue;
            int i = n++;
            int64_t end_u = offsets[u] + ((bytes[u] > 1 ? bytes[u] : 1) + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
            while (i > 0) {
                int v = busy[i - 1];
                int64_t end_v = offsets[v] + ((bytes[v] > 1 ? bytes[v] : 1) + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
                if (offsets[v] < offsets[u] || (offsets[v] == offsets[u] && end_v <= end_u)) break;
                busy[i] = v;
                i--;
            }
            busy[i] = u;
        }
        for (int i = 0; i < n; i++) {
            int u = busy[i];
            int64_t end = offsets[u] + ((bytes[u] > 1 ? bytes[u] : 1) + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
            if (offset + size <= offsets[u]) break;
            if (end > offset) offset = end;
        }
        offsets[t] = offset;
        placed[k] = t;
        if (offset + size > peak) peak = offset + size;
    }
    return peak;
}

/* The dims vector, the arena and the output dims for these input dims (Note [dims as affine formulas]
 * in flowc's compiler/aot/dims.py); kept until other dims come. */
static int plan(@NAME@_context *ctx, const int64_t *input_dims) {
    int64_t groups[NUM_GROUPS + 1], slots[NUM_SLOTS + 1], bytes[NUM_TEMPS + 1], offsets[NUM_TEMPS + 1];
    int seen[NUM_GROUPS + 1] = {0}, first[NUM_GROUPS + 1];
    if (ctx->planned && memcmp(ctx->planned_for, input_dims, NUM_INPUT_DIMS * sizeof(int64_t)) == 0) return 0;
    ctx->planned = 0;
    for (int i = 0; i < NUM_INPUT_DIMS; i++) {
        int64_t d = input_dims[i];
        const char *name = input_names[input_of_dim[i]];
        if (d < 0) return fail(ctx, @NAME@_ERROR_DIMS, "input %d ('%s') axis %d: dim %lld is negative",
                               input_of_dim[i], name, axis_of_dim[i], (long long)d);
        if (input_static[i] >= 0 && d != input_static[i])
            return fail(ctx, @NAME@_ERROR_DIMS, "input %d ('%s') axis %d: expected dim %lld, got %lld",
                        input_of_dim[i], name, axis_of_dim[i], (long long)input_static[i], (long long)d);
        int g = input_group[i];
        if (g < 0) continue;
        if (!seen[g]) { seen[g] = 1; first[g] = i; groups[g] = d; continue; }
        if (d != groups[g])
            return fail(ctx, @NAME@_ERROR_DIMS,
                        "input %d ('%s') axis %d is %lld but must equal input %d ('%s') axis %d, which is %lld",
                        input_of_dim[i], name, axis_of_dim[i], (long long)d, input_of_dim[first[g]],
                        input_names[input_of_dim[first[g]]], axis_of_dim[first[g]], (long long)groups[g]);
    }
@SLOTS@
    for (int i = 0; i < NUM_INPUT_DIMS; i++)  /* dims that the other inputs' dims determine */
        if (input_slot[i] >= 0 && input_dims[i] != slots[input_slot[i]])
            return fail(ctx, @NAME@_ERROR_DIMS,
                        "input %d ('%s') axis %d is %lld but the other inputs' dims make it %lld",
                        input_of_dim[i], input_names[input_of_dim[i]], axis_of_dim[i], (long long)input_dims[i],
                        (long long)slots[input_slot[i]]);
    for (int s = 0; s < NUM_SLOTS; s++)
        if (slots[s] < 0) return fail(ctx, @NAME@_ERROR_DIMS, "these input dims give a negative size (%lld)",
                                      (long long)slots[s]);
    for (int k = 0; k < NUM_NONEMPTY; k++)
        if (slots[nonempty_slots[k]] == 0)
            return fail(ctx, @NAME@_ERROR_DIMS, "%s: these input dims make the axis it reduces empty",
                        nonempty_ops[k]);
    for (int t = 0; t < NUM_TEMPS; t++) {
        int64_t size = temp_itemsize[t];
        for (int a = temp_start[t]; a < temp_start[t + 1]; a++)
            if (__builtin_mul_overflow(size, dim_of(temp_dims[a], slots), &size) || size > (INT64_MAX >> 2))
                return fail(ctx, @NAME@_ERROR_MEMORY, "these input dims need more scratch memory than can exist");
        bytes[t] = size;
    }
    int64_t peak = layout(bytes, offsets);
    if (peak > ctx->arena_bytes) {
        void *arena = aligned_bytes(peak);
        if (arena == NULL)
            return fail(ctx, @NAME@_ERROR_MEMORY, "cannot allocate %lld bytes of scratch memory", (long long)peak);
        free(ctx->arena);
        ctx->arena = arena;
        ctx->arena_bytes = peak;
    }
    memcpy(ctx->dims, slots, NUM_SLOTS * sizeof(int64_t));
    memcpy(ctx->dims + NUM_SLOTS, offsets, NUM_TEMPS * sizeof(int64_t));
    for (int i = 0; i < NUM_OUTPUT_DIMS; i++) ctx->output_dims[i] = dim_of(output_dims_code[i], slots);
    memcpy(ctx->planned_for, input_dims, NUM_INPUT_DIMS * sizeof(int64_t));
    ctx->planned = 1;
    return 0;
}

@NAME@_context *@NAME@_create(void) {
    @NAME@_context *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) return NULL;
    ctx->step = FIRST_STEP;
    for (int k = 0; k < NUM_VARIABLES; k++) {
        ctx->variables[k] = aligned_bytes(variable_bytes[k] > 0 ? variable_bytes[k] : 1);
        if (ctx->variables[k] == NULL) { @NAME@_destroy(ctx); return NULL; }
        memcpy(ctx->variables[k], flowc_export_data + variable_offset[k], (size_t)variable_bytes[k]);
    }
    if (DISCARD_BYTES > 0 && (ctx->discard = aligned_bytes(DISCARD_BYTES)) == NULL) {
        @NAME@_destroy(ctx);
        return NULL;
    }
    return ctx;
}

void @NAME@_destroy(@NAME@_context *ctx) {
    if (ctx == NULL) return;
    for (int k = 0; k < NUM_VARIABLES; k++) free(ctx->variables[k]);
    free(ctx->discard);
    free(ctx->arena);
    free(ctx);
}

const char *@NAME@_error(const @NAME@_context *ctx) { return ctx == NULL ? "no context (NULL)" : ctx->error; }

void *@NAME@_variable(@NAME@_context *ctx, int index) {
    if (ctx == NULL || index < 0 || index >= NUM_VARIABLES) return NULL;
    return ctx->variables[index];
}

int @NAME@_output_dims(@NAME@_context *ctx, const int64_t *input_dims, int64_t *output_dims) {
    if (ctx == NULL) return @NAME@_ERROR_ARGUMENT;
    ctx->error[0] = '\0';
    if ((input_dims == NULL && NUM_INPUT_DIMS > 0) || (output_dims == NULL && NUM_OUTPUT_DIMS > 0))
        return fail(ctx, @NAME@_ERROR_ARGUMENT, "input_dims or output_dims is NULL");
    int status = plan(ctx, input_dims);
    if (status) return status;
    memcpy(output_dims, ctx->output_dims, NUM_OUTPUT_DIMS * sizeof(int64_t));
    return 0;
}

int @NAME@_run(@NAME@_context *ctx, const void *const *inputs, const int64_t *input_dims, void *const *outputs) {
    void *buffers[NUM_ARGS + NUM_RESULTS + 1];
    if (ctx == NULL) return @NAME@_ERROR_ARGUMENT;
    ctx->error[0] = '\0';
    if ((input_dims == NULL && NUM_INPUT_DIMS > 0) || (inputs == NULL && @NAME@_NUM_INPUTS > 0) ||
        (outputs == NULL && @NAME@_NUM_OUTPUTS > 0))
        return fail(ctx, @NAME@_ERROR_ARGUMENT, "inputs, input_dims or outputs is NULL");
    int status = plan(ctx, input_dims);
    if (status) return status;
    for (int i = 0; i < NUM_ARGS; i++) {
        switch (arg_kind[i]) {
        case 0: buffers[i] = (void *)inputs[arg_index[i]]; break;
        case 1: buffers[i] = ctx->variables[arg_index[i]]; break;
        case 2: buffers[i] = (void *)(flowc_export_data + arg_index[i]); break;
        default: buffers[i] = &ctx->step; break;
        }
    }
    for (int j = 0; j < NUM_RESULTS; j++) {
        int k = result_index[j];
        buffers[NUM_ARGS + j] = result_kind[j] == 0 ? outputs[k]
                                : result_kind[j] == 1 ? ctx->variables[k]
                                : (char *)ctx->discard + discard_offset[k];
    }
    buffers[NUM_ARGS + NUM_RESULTS] = ctx->arena;
    ctx->dims[ERROR_SLOT] = 0;
    ctx->dims[ERROR_SLOT + 1] = 0;
    status = flowc_main(buffers, ctx->dims);
    if (status) {
        const char *what = status >= 1 && status <= NUM_KERNELS ? kernel_errors[status - 1] : "a kernel";
        return fail(ctx, @NAME@_ERROR_INDEX, "%s: index %lld is out of range at run time", what,
                    (long long)ctx->dims[ERROR_SLOT + 1]);
    }
    for (int c = 0; c < NUM_COPIES; c++)  /* updates not written in place (Note [donated arguments]) */
        memcpy(ctx->variables[copy_to[c]], (char *)ctx->discard + discard_offset[copy_from[c]],
               (size_t)variable_bytes[copy_to[c]]);
    ctx->step++;
    return 0;
}
"""
