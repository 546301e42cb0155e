/* fluxion's thread pool (fluxion/compiler/native/_call.c) against OpenMP (libgomp) on one loop of
   y = 2x + 1 cut in two: the cost of handing out work and waiting for it. Which to use was
   chosen by this; see bench/README.md ("Native kernels").

   PY=$(python -c "import sysconfig as s; print(s.get_paths()['include'])")
   LIB=$(python -c "import sysconfig as s; print(s.get_config_var('LIBDIR'))")
   gcc -O2 -fopenmp -I"$PY" bench/pool_openmp.c -o /tmp/pool_openmp -L"$LIB" -lpython3.11 -pthread
   for policy in passive active; do
       OMP_WAIT_POLICY=$policy LD_LIBRARY_PATH="$LIB" /tmp/pool_openmp 1024 20000
       OMP_WAIT_POLICY=$policy LD_LIBRARY_PATH="$LIB" /tmp/pool_openmp 262144 2000
   done
*/
#include "../fluxion/compiler/native/_call.c"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static float *x, *y;

static void scale(void *const *data, int64_t begin, int64_t end) {
    (void)data;
    for (int64_t i = begin; i < end; i++) y[i] = x[i] * 2.0f + 1.0f;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 3) return fprintf(stderr, "usage: %s ELEMENTS REPEATS\n", argv[0]), 2;
    long n = atol(argv[1]);
    int repeats = atoi(argv[2]);
    x = calloc(n, sizeof *x), y = calloc(n, sizeof *y);
    for (int round = 0; round < 3; round++) {
        double t = now();
        for (int r = 0; r < repeats; r++) scale(NULL, 0, n);
        double one = (now() - t) / repeats * 1e6;
        t = now();
        for (int r = 0; r < repeats; r++) fx_parallel(scale, NULL, n, 2, 1);
        double pool = (now() - t) / repeats * 1e6;
        t = now();
        for (int r = 0; r < repeats; r++) {
#pragma omp parallel for num_threads(2) schedule(static)
            for (long i = 0; i < n; i++) y[i] = x[i] * 2.0f + 1.0f;
        }
        double openmp = (now() - t) / repeats * 1e6;
        printf("%ld elements: one thread %.2f us, fluxion's pool %.2f us, OpenMP %.2f us\n", n,
               one, pool, openmp);
    }
    return 0;
}
