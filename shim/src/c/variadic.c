/* The variadic entry points of the shim. Stable Rust cannot define C-variadic
 * functions, so these unpack the optional argument and forward to Rust
 * (see open.rs). `which` tells Rust which real function a pass-through must
 * call, so another preloaded library interposing one of them still sees it. */
#include <fcntl.h>
#include <stdarg.h>

enum { W_OPEN, W_OPEN64, W_OPENAT, W_OPENAT64 };

extern int vrift_openat(int dirfd, const char *path, int flags, unsigned mode, int which);
extern int vrift_fcntl(int fd, int cmd, long arg, int is64);
extern int vrift_ioctl(int fd, unsigned long request, void *arg);

static unsigned take_mode(int flags, va_list ap) {
    if (flags & (O_CREAT | __O_TMPFILE))
        return va_arg(ap, unsigned);
    return 0;
}

int open(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); unsigned mode = take_mode(flags, ap); va_end(ap);
    return vrift_openat(AT_FDCWD, path, flags, mode, W_OPEN);
}

int open64(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); unsigned mode = take_mode(flags, ap); va_end(ap);
    return vrift_openat(AT_FDCWD, path, flags, mode, W_OPEN64);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); unsigned mode = take_mode(flags, ap); va_end(ap);
    return vrift_openat(dirfd, path, flags, mode, W_OPENAT);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); unsigned mode = take_mode(flags, ap); va_end(ap);
    return vrift_openat(dirfd, path, flags, mode, W_OPENAT64);
}

/* _FORTIFY_SOURCE variants: called when the compiler knows no mode is passed. */
int __open_2(const char *path, int flags) { return vrift_openat(AT_FDCWD, path, flags, 0, W_OPEN); }
int __open64_2(const char *path, int flags) { return vrift_openat(AT_FDCWD, path, flags, 0, W_OPEN64); }
int __openat_2(int dirfd, const char *path, int flags) { return vrift_openat(dirfd, path, flags, 0, W_OPENAT); }
int __openat64_2(int dirfd, const char *path, int flags) { return vrift_openat(dirfd, path, flags, 0, W_OPENAT64); }

int fcntl(int fd, int cmd, ...) {
    va_list ap; va_start(ap, cmd); long arg = va_arg(ap, long); va_end(ap);
    return vrift_fcntl(fd, cmd, arg, 0);
}

int fcntl64(int fd, int cmd, ...) {
    va_list ap; va_start(ap, cmd); long arg = va_arg(ap, long); va_end(ap);
    return vrift_fcntl(fd, cmd, arg, 1);
}

/* Programs that bypass libc's wrappers (libuv, as node uses, calls statx
 * through syscall()) still reach the view: Rust handles the numbers it knows
 * and passes everything else to the real syscall(). */
extern long vrift_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6);

long syscall(long n, ...) {
    va_list ap; va_start(ap, n);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    return vrift_syscall(n, a1, a2, a3, a4, a5, a6);
}

/* execl family: collect the variadic argv (NULL-terminated) on the stack and
 * forward to the shim's execv/execvp/execve, which keep the inception's
 * environment and run rift executables. */
#include <stddef.h>
#include <unistd.h>

#define VRIFT_MAX_ARGS 4096

/* Collects `arg, ...` up to and including the terminating NULL into argv. */
#define COLLECT_ARGS(argv, arg, ap)                                            \
    do {                                                                       \
        size_t n_ = 0;                                                         \
        (argv)[n_++] = (arg);                                                  \
        while (n_ < VRIFT_MAX_ARGS && ((argv)[n_++] = va_arg(ap, const char *)) != NULL) {} \
        (argv)[VRIFT_MAX_ARGS - 1] = NULL;                                     \
    } while (0)

int execl(const char *path, const char *arg, ...) {
    const char *argv[VRIFT_MAX_ARGS];
    va_list ap; va_start(ap, arg);
    COLLECT_ARGS(argv, arg, ap);
    va_end(ap);
    return execv(path, (char *const *)argv);
}

int execlp(const char *file, const char *arg, ...) {
    const char *argv[VRIFT_MAX_ARGS];
    va_list ap; va_start(ap, arg);
    COLLECT_ARGS(argv, arg, ap);
    va_end(ap);
    return execvp(file, (char *const *)argv);
}

int execle(const char *path, const char *arg, ...) {
    const char *argv[VRIFT_MAX_ARGS];
    va_list ap; va_start(ap, arg);
    COLLECT_ARGS(argv, arg, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, (char *const *)argv, envp);
}

/* The resolving guard of real.rs, per thread. Rust's thread_local! needs std,
 * which the shipped (panic=abort, no_std) library does not link. Initial-exec:
 * the library is loaded at start, so its TLS is in the static block and an
 * access is one instruction (no __tls_get_addr, no allocation). */
static __thread int resolving __attribute__((tls_model("initial-exec")));

int vrift_resolving_enter(void) {
    int was = resolving;
    resolving = 1;
    return was;
}

void vrift_resolving_leave(void) { resolving = 0; }

/* The precompiled Rust `core` carries unwind tables that name this
 * personality routine. The shipped library is built with panic=abort and
 * no std, so nothing unwinds and it is never called; it only has to exist.
 * Weak, so a std build's own definition wins; hidden, so it is not exported. */
__attribute__((weak, visibility("hidden"))) void rust_eh_personality(void) {}

int ioctl(int fd, unsigned long request, ...) {
    va_list ap; va_start(ap, request); void *arg = va_arg(ap, void *); va_end(ap);
    return vrift_ioctl(fd, request, arg);
}
