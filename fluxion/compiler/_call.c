/* fluxion's one C extension: call(kernel, *arrays) runs a native kernel (compiler/native.py)
   on NumPy arrays. The kernels themselves are plain C in shared libraries, built per program
   without Python's headers (gcc would take longer to read them than the loops); this module
   is the same for every kernel, so it is built once: by pip at install, or, where that was not
   done, by toolchain.py into its cache. ``kernel`` is the bytes of an fx_kernel
   (toolchain.caller makes them). A non-contiguous input is first copied by its own copy() (NumPy's, fast for
   every layout). Sizes are checked, so a wrong call raises instead of reading past an array. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    int64_t run;      /* the address of its void run(void *const *data) */
    int64_t n_in;     /* how many of its arrays are inputs (the first ones) */
    int64_t bytes[];  /* the size of each array, inputs then outputs */
} fx_kernel;

typedef struct { Py_buffer view; PyObject *copy; } fx_arg;

static void fx_release(fx_arg *args, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        PyBuffer_Release(&args[i].view);
        Py_XDECREF(args[i].copy);
    }
}

static int fx_acquire(PyObject *const *objects, Py_ssize_t n, const fx_kernel *kernel,
                      fx_arg *args) {
    for (Py_ssize_t i = 0; i < n; i++) {
        fx_arg *a = &args[i];
        a->copy = NULL;
        int flags = i < kernel->n_in ? PyBUF_C_CONTIGUOUS : PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE;
        int status = PyObject_GetBuffer(objects[i], &a->view, flags);
        if (status < 0 && i < kernel->n_in && (PyErr_ExceptionMatches(PyExc_BufferError) ||
                                               PyErr_ExceptionMatches(PyExc_ValueError))) {
            PyErr_Clear();
            a->copy = PyObject_CallMethod(objects[i], "copy", NULL);
            status = a->copy ? PyObject_GetBuffer(a->copy, &a->view, flags) : -1;
            if (status < 0) Py_CLEAR(a->copy);
        }
        if (status < 0) {
            fx_release(args, i);
            return -1;
        }
        if (a->view.len != kernel->bytes[i]) {
            PyErr_Format(PyExc_ValueError, "native kernel: array %zd has %zd bytes, expected %lld",
                         i, a->view.len, (long long)kernel->bytes[i]);
            fx_release(args, i + 1);
            return -1;
        }
    }
    return 0;
}

static PyObject *call(PyObject *self, PyObject *const *objects, Py_ssize_t nargs) {
    if (nargs < 1 || !PyBytes_Check(objects[0]) ||
        PyBytes_GET_SIZE(objects[0]) <= (Py_ssize_t)sizeof(fx_kernel)) {
        PyErr_SetString(PyExc_TypeError, "call(kernel, *arrays): kernel is an fx_kernel's bytes");
        return NULL;
    }
    const fx_kernel *kernel = (const fx_kernel *)PyBytes_AS_STRING(objects[0]);
    Py_ssize_t n = (PyBytes_GET_SIZE(objects[0]) - sizeof(fx_kernel)) / sizeof(int64_t);
    if (nargs - 1 != n) {
        PyErr_Format(PyExc_TypeError, "native kernel: takes %zd arrays, got %zd", n, nargs - 1);
        return NULL;
    }
    fx_arg args[n];
    void *data[n];
    if (fx_acquire(objects + 1, n, kernel, args) < 0) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) data[i] = args[i].view.buf;
    ((void (*)(void *const *))(intptr_t)kernel->run)(data);
    fx_release(args, n);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"call", (PyCFunction)(void (*)(void))call, METH_FASTCALL, "call(kernel, *arrays)"},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_call", NULL, -1, methods};
PyMODINIT_FUNC PyInit__call(void) { return PyModule_Create(&module); }
