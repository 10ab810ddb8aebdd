/* Calls into the shim at the earliest and most awkward moments: from a
 * constructor (before main), and from inside malloc, which this program
 * interposes (as jemalloc does for rustc) and which calls stat() itself on
 * its first use. Must neither deadlock nor recurse forever. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static int in_malloc, malloc_stats, ctor_saw;
static long mallocs;

void *malloc(size_t n) {
    mallocs++;
    if (!in_malloc && malloc_stats < 3) {
        in_malloc = 1;
        struct stat st;
        if (stat("/proc/self/exe", &st) == 0) malloc_stats++;
        in_malloc = 0;
    }
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) { mallocs++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { mallocs++; return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }

static const char *target(void) { return getenv("EARLY_TARGET"); }

__attribute__((constructor)) static void early(void) {
    struct stat st;
    const char *t = target();
    ctor_saw = t && stat(t, &st) == 0;
}

int main(void) {
    struct stat st;
    free(malloc(16)); /* the first malloc stats a file itself */
    long before = mallocs;
    for (int i = 0; i < 10000; i++) stat(target(), &st);          /* rift hit */
    for (int i = 0; i < 10000; i++) stat("/nonexistent/x", &st);  /* outside */
    for (int i = 0; i < 10000; i++) stat(".", &st);               /* disk, in domain */
    long during = mallocs - before;
    printf("ctor_saw=%d malloc_stats=%d allocations_in_lookups=%ld\n", ctor_saw, malloc_stats > 0, during);
    return 0;
}
