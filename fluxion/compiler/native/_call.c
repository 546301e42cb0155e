/* fluxion's one C extension: call(kernel, threads, *arrays) runs a native kernel
   (compiler/native/) on NumPy arrays. The kernels themselves are plain C in shared
   libraries, built per program without Python's headers (gcc would take longer to read them
   than the loops); this module is the same for every kernel, so it is built once: by pip at
   install, or, where that was not done, by toolchain.py into its cache. ``kernel`` is the
   bytes of an fx_kernel (native.caller makes them). A non-contiguous input is first copied
   by its own copy() (NumPy's, fast for every layout). Sizes are checked, so a wrong call
   raises instead of reading past an array.

   A kernel runs the range [begin, end) of one of its loops (emit.py picks one whose
   iterations write apart: never across a sum). With ``threads`` > 1, call() cuts the loop
   into at most min(FX_RANGES * threads, kernel->parts) equal ranges, which the caller's
   thread and threads - 1 of fluxion's pool take one at a time as they come: a thread that
   is late or loses its core to another process holds up a small part of the work, not a
   thread's share of it (on a busy machine the caller may run them all). Every element is
   computed by the same code in the same order whichever thread runs it, so results are
   bitwise the same for any number of threads. The pool's threads wait for work by
   spinning a bounded while (FX_SPIN), then sleep on a condition variable: no core is held
   when fluxion is idle. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The calling convention's version: toolchain.py loads an installed _call only where its
   ABI is this file's (an older build is ignored, and this file built into the cache). */
#define FX_CALL_ABI 2

typedef void (*fx_run)(void *const *data, int64_t begin, int64_t end);

typedef struct {
    int64_t run;      /* the address of its void run(void *const *data, begin, end) */
    int64_t n_in;     /* how many of its arrays are inputs (the first ones) */
    int64_t length;   /* the blocks of the loop it cuts (1: it runs whole) */
    int64_t parts;    /* the most ranges its work gains from (its grain, emit.py) */
    int64_t bytes[];  /* the size of each array, inputs then outputs */
} fx_kernel;

/* ------------------------------------------------------------------------------ the pool */

/* Pause instructions a waiting thread spins through before it sleeps: about 20-60 us, less
   than waking a sleeping thread costs on a busy machine, and all the wait there is when
   work comes every few microseconds (a compiled step's kernels) */
#define FX_SPIN 2000
#define FX_RANGES 4
#define FX_MAX_THREADS 256
#define FX_MAX_RANGES (FX_RANGES * FX_MAX_THREADS)

/* A job: a kernel's loop and how it is cut. The pool's copy changes only under its lock;
   each thread that takes part works from a copy of its own. */
typedef struct {
    fx_run run;
    void *const *data;
    int64_t length;
    int parts;
    uint32_t id;
} fx_job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    int started;                /* pool threads running */
    atomic_uint_fast32_t id;    /* the current job's, bumped for each */
    fx_job job;
    int helpers, joined;        /* pool threads the current job may have, and has had */
    /* the next range to take, tagged with its job's id (high 32 bits): a thread that
       copied an older job takes no range of a newer one */
    atomic_uint_fast64_t next;
    atomic_int left;            /* ranges of the current job not finished */
    int last;                   /* the ranges of the last call, */
    long tids[FX_MAX_RANGES];   /* and the thread that ran each (last_threads) */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static __thread long fx_own_tid;

static long fx_tid(void) {
    if (!fx_own_tid) fx_own_tid = (long)syscall(SYS_gettid);
    return fx_own_tid;
}

static inline void fx_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Runs ranges of ``job`` until none is left, or the pool has moved on to another job. */
static void fx_take(const fx_job *job) {
    uint64_t next = atomic_load(&pool.next);
    while ((uint32_t)(next >> 32) == job->id && (uint32_t)next < (uint32_t)job->parts) {
        if (!atomic_compare_exchange_weak(&pool.next, &next, next + 1)) continue;
        int64_t p = (uint32_t)next;
        job->run(job->data, job->length * p / job->parts, job->length * (p + 1) / job->parts);
        pool.tids[p] = fx_tid();
        if (atomic_fetch_sub(&pool.left, 1) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_broadcast(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
        next = atomic_load(&pool.next);
    }
}

static void *fx_worker(void *id) {
    uint32_t seen = (uint32_t)(uintptr_t)id;  /* the job before the one it was started for */
    for (;;) {
        for (int k = 0; k < FX_SPIN && atomic_load(&pool.id) == seen; k++) fx_pause();
        pthread_mutex_lock(&pool.lock);
        while (atomic_load(&pool.id) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        seen = (uint32_t)atomic_load(&pool.id);
        int joins = pool.joined < pool.helpers;  /* else the job has the threads it asked for */
        pool.joined += joins;
        fx_job job = pool.job;
        pthread_mutex_unlock(&pool.lock);
        if (joins) fx_take(&job);
    }
    return NULL;
}

/* A forked child has none of the pool's threads (only the forking one is copied, under
   a new id). */
static void fx_forked(void) {
    fx_own_tid = 0;
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = 0;
}

/* Runs ``run`` over [0, length) in ``parts`` ranges on this thread and ``helpers`` of the
   pool; returns once all are done. Called with the GIL held, so by one thread at a time. */
static void fx_parallel(fx_run run, void *const *data, int64_t length, int parts, int helpers) {
    pthread_mutex_lock(&pool.lock);
    while (pool.started < helpers) {
        pthread_t thread;
        void *id = (void *)(uintptr_t)atomic_load(&pool.id);
        if (pthread_create(&thread, NULL, fx_worker, id) != 0) break;
        pthread_detach(thread);
        pool.started++;
    }
    uint32_t id = (uint32_t)atomic_load(&pool.id) + 1;
    fx_job job = {run, data, length, parts, id};
    pool.job = job, pool.last = parts;
    pool.helpers = helpers, pool.joined = 0;
    atomic_store(&pool.left, parts);
    atomic_store(&pool.next, (uint64_t)id << 32);
    atomic_store(&pool.id, id);
    for (int k = 0; k < helpers; k++) pthread_cond_signal(&pool.wake);  /* spinning ones need none */
    pthread_mutex_unlock(&pool.lock);
    fx_take(&job);  /* this thread takes ranges too: all of them where the pool's are late */
    for (int k = 0; k < FX_SPIN && atomic_load(&pool.left) > 0; k++) fx_pause();
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.left) > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}

/* ------------------------------------------------------------------------------ the call */

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
    if (nargs < 2 || !PyBytes_Check(objects[0]) ||
        PyBytes_GET_SIZE(objects[0]) <= (Py_ssize_t)sizeof(fx_kernel)) {
        PyErr_SetString(PyExc_TypeError,
                        "call(kernel, threads, *arrays): kernel is an fx_kernel's bytes");
        return NULL;
    }
    long threads = PyLong_AsLong(objects[1]);
    if (threads < 1) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "native kernel: threads must be >= 1, got %ld", threads);
        return NULL;
    }
    const fx_kernel *kernel = (const fx_kernel *)PyBytes_AS_STRING(objects[0]);
    Py_ssize_t n = (PyBytes_GET_SIZE(objects[0]) - sizeof(fx_kernel)) / sizeof(int64_t);
    if (nargs - 2 != n) {
        PyErr_Format(PyExc_TypeError, "native kernel: takes %zd arrays, got %zd", n, nargs - 2);
        return NULL;
    }
    fx_arg args[n];
    void *data[n];
    if (fx_acquire(objects + 2, n, kernel, args) < 0) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) data[i] = args[i].view.buf;
    fx_run run = (fx_run)(intptr_t)kernel->run;
    threads = threads < FX_MAX_THREADS ? threads : FX_MAX_THREADS;
    int64_t parts = kernel->parts < FX_RANGES * threads ? kernel->parts : FX_RANGES * threads;
    parts = parts < kernel->length ? parts : kernel->length;
    if (threads > 1 && parts > 1) {
        int helpers = (int)(parts < threads ? parts : threads) - 1;
        fx_parallel(run, data, kernel->length, (int)parts, helpers);
    } else {
        run(data, 0, kernel->length);
        pool.tids[0] = fx_tid(), pool.last = 1;
    }
    fx_release(args, n);
    Py_RETURN_NONE;
}

static PyObject *last_threads(PyObject *self, PyObject *unused) {
    PyObject *tids = PyTuple_New(pool.last);
    for (int p = 0; tids && p < pool.last; p++)
        PyTuple_SET_ITEM(tids, p, PyLong_FromLong(pool.tids[p]));
    return tids;
}

static PyMethodDef methods[] = {
    {"call", (PyCFunction)(void (*)(void))call, METH_FASTCALL, "call(kernel, threads, *arrays)"},
    {"last_threads", last_threads, METH_NOARGS,
     "the thread ids (gettid) that ran each range of the last call, for tests"},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_call", NULL, -1, methods};

PyMODINIT_FUNC PyInit__call(void) {
    static int once;
    if (!once++) pthread_atfork(NULL, NULL, fx_forked);
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "ABI", FX_CALL_ABI) < 0) Py_CLEAR(m);
    return m;
}
