/* Every mutation the write side serves, with its return value and errno,
 * printed one line each. The tests run it in a physical directory and in
 * the rift of a project holding the same tree: the outputs must be equal
 * (POSIX results and errnos as Linux gives them), and the project's files
 * on disk must be untouched.
 *
 * The directory given holds, before the run: src/a.txt ("alpha\n"),
 * src/b.txt ("bravo\n"), src/sub/c.txt ("charlie\n"), ro.txt (0444). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

static void report(const char *what, long r) {
    printf("%-28s %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
    errno = 0;
}

static void show_file(const char *path) {
    char buf[256] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("  %s: %s\n", path, strerrorname_np(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    struct stat st;
    stat(path, &st);
    printf("  %s: [%.*s] size=%lld mode=%o\n", path, (int)(n > 0 ? n : 0), buf,
           (long long)st.st_size, st.st_mode & 07777);
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("  ls %s: %s\n", dir, strerrorname_np(errno));
        return;
    }
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, ".vrift"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("  ls %s:", dir);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

static long put(const char *path, int flags, const char *text) {
    int fd = open(path, flags, 0644);
    if (fd < 0) return -1;
    long n = write(fd, text, strlen(text));
    close(fd);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0) return 2;
    umask(022);

    /* create, exclusive create, append, truncate */
    report("creat-excl new", put("new.txt", O_WRONLY | O_CREAT | O_EXCL, "one\n"));
    report("creat-excl again", put("new.txt", O_WRONLY | O_CREAT | O_EXCL, "x"));
    report("append", put("new.txt", O_WRONLY | O_APPEND, "two\n"));
    show_file("new.txt");
    report("rdwr no-trunc", put("src/a.txt", O_RDWR, "ALP"));
    show_file("src/a.txt");
    report("trunc", put("src/b.txt", O_WRONLY | O_TRUNC, "b2\n"));
    show_file("src/b.txt");
    report("open missing no-creat", open("nope.txt", O_WRONLY));
    report("open dir for write", open("src", O_WRONLY));
    report("creat in missing dir", put("nodir/x", O_WRONLY | O_CREAT, "x"));
    report("creat under a file", put("new.txt/x", O_WRONLY | O_CREAT, "x"));

    /* stdio */
    FILE *f = fopen("stdio.txt", "w");
    fputs("stdio line\n", f);
    fclose(f);
    f = fopen("stdio.txt", "a");
    fputs("appended\n", f);
    fclose(f);
    f = fopen("stdio.txt", "r+");
    fputs("STDIO", f);
    fclose(f);
    show_file("stdio.txt");
    report("fopen x existing", fopen("stdio.txt", "wx") == NULL ? -1 : 0);

    /* read your writes through a second fd while the first is open */
    int w = open("live.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    report("write live", write(w, "partial", 7));
    show_file("live.txt");
    report("fsync live", fsync(w));
    report("ftruncate live", ftruncate(w, 3));
    struct stat st;
    fstat(w, &st);
    printf("  fstat live size=%lld mode=%o\n", (long long)st.st_size, st.st_mode & 07777);
    report("fchmod live", fchmod(w, 0640));
    close(w);
    show_file("live.txt");

    /* unlink */
    report("unlink", unlink("src/b.txt"));
    report("unlink again", unlink("src/b.txt"));
    report("unlink dir", unlink("src/sub"));
    report("remove file", remove("stdio.txt"));
    list("src");

    /* mkdir / rmdir */
    report("mkdir", mkdir("d", 0750));
    report("mkdir again", mkdir("d", 0755));
    report("mkdir over file", mkdir("new.txt", 0755));
    report("mkdir missing parent", mkdir("x/y", 0755));
    stat("d", &st);
    printf("  d mode=%o\n", st.st_mode & 07777);
    report("put in d", put("d/f", O_WRONLY | O_CREAT, "f\n"));
    report("rmdir non-empty", rmdir("d"));
    report("rmdir file", rmdir("new.txt"));
    report("unlink d/f", unlink("d/f"));
    report("rmdir empty", rmdir("d"));
    report("rmdir gone", rmdir("d"));
    report("rmdir physical non-empty", rmdir("src/sub"));
    report("unlink src/sub/c.txt", unlink("src/sub/c.txt"));
    report("rmdir physical emptied", rmdir("src/sub"));
    list("src");
    report("mkdir it again", mkdir("src/sub", 0755));
    list("src/sub");
    report("remove dir", remove("src/sub"));

    /* rename */
    report("rename file", rename("new.txt", "renamed.txt"));
    report("rename missing", rename("new.txt", "x.txt"));
    show_file("renamed.txt");
    report("rename onto existing", rename("renamed.txt", "src/a.txt"));
    show_file("src/a.txt");
    put("p.txt", O_WRONLY | O_CREAT, "p\n");
    put("q.txt", O_WRONLY | O_CREAT, "q\n");
    report("renameat2 noreplace", renameat2(AT_FDCWD, "p.txt", AT_FDCWD, "q.txt", RENAME_NOREPLACE));
    report("renameat2 exchange", renameat2(AT_FDCWD, "p.txt", AT_FDCWD, "q.txt", RENAME_EXCHANGE));
    show_file("p.txt");
    show_file("q.txt");
    report("renameat2 exchange missing", renameat2(AT_FDCWD, "p.txt", AT_FDCWD, "zz", RENAME_EXCHANGE));
    mkdir("e", 0755);
    put("e/one", O_WRONLY | O_CREAT, "1\n");
    mkdir("e/inner", 0755);
    put("e/inner/two", O_WRONLY | O_CREAT, "2\n");
    report("rename file onto dir", rename("p.txt", "e"));
    report("rename dir onto file", rename("e", "p.txt"));
    report("rename dir into itself", rename("e", "e/inner/x"));
    report("rename dir", rename("e", "e2"));
    list(".");
    list("e2");
    list("e2/inner");
    show_file("e2/inner/two");
    report("rename physical dir", rename("src", "src2"));
    list(".");
    list("src2");
    show_file("src2/a.txt");
    mkdir("empty", 0755);
    mkdir("full", 0755);
    put("full/x", O_WRONLY | O_CREAT, "x");
    report("rename dir onto empty dir", rename("e2", "empty"));
    report("rename dir onto full dir", rename("empty", "full"));
    list("empty");

    /* links */
    report("symlink", symlink("q.txt", "ln"));
    report("symlink exists", symlink("q.txt", "ln"));
    char target[64] = {0};
    report("readlink", readlink("ln", target, sizeof target - 1));
    printf("  -> %s\n", target);
    lstat("ln", &st);
    printf("  lstat ln islnk=%d\n", S_ISLNK(st.st_mode));
    show_file("ln");
    report("link", link("p.txt", "hard"));
    report("link exists", link("p.txt", "hard"));
    report("link dir", link("full", "full2"));
    show_file("hard");

    /* metadata */
    report("chmod", chmod("q.txt", 0600));
    show_file("q.txt");
    report("chmod dir", chmod("full", 0700));
    stat("full", &st);
    printf("  full mode=%o\n", st.st_mode & 07777);
    report("chmod missing", chmod("missing", 0600));
    report("chown self", chown("q.txt", getuid(), getgid()));
    struct timespec ts[2] = {{1000000000, 5}, {1200000000, 7}};
    report("utimensat", utimensat(AT_FDCWD, "q.txt", ts, 0));
    stat("q.txt", &st);
    printf("  times a=%ld.%09ld m=%ld.%09ld\n", (long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {1300000000, 0}};
    report("utimensat omit", utimensat(AT_FDCWD, "q.txt", omit, 0));
    stat("q.txt", &st);
    printf("  times a=%ld m=%ld\n", (long)st.st_atim.tv_sec, (long)st.st_mtim.tv_sec);
    struct timeval tv[2] = {{1400000000, 0}, {1500000000, 0}};
    report("utimes", utimes("q.txt", tv));
    struct utimbuf ub = {1600000000, 1700000000};
    report("utime", utime("q.txt", &ub));
    stat("q.txt", &st);
    printf("  times a=%ld m=%ld\n", (long)st.st_atim.tv_sec, (long)st.st_mtim.tv_sec);
    report("truncate", truncate("q.txt", 1));
    show_file("q.txt");
    report("truncate grow", truncate("q.txt", 4));
    stat("q.txt", &st);
    printf("  size=%lld\n", (long long)st.st_size);
    report("truncate dir", truncate("full", 0));

    /* temporary files */
    char tmpl[] = "tmp-XXXXXX";
    int t = mkstemp(tmpl);
    report("mkstemp", t >= 0 ? 0 : -1);
    report("mkstemp write", write(t, "tmp", 3));
    fstat(t, &st);
    printf("  mkstemp mode=%o size=%lld\n", st.st_mode & 07777, (long long)st.st_size);
    close(t);
    report("mkstemp unlink", unlink(tmpl));
    char dtmpl[] = "dtmp-XXXXXX";
    report("mkdtemp", mkdtemp(dtmpl) ? 0 : -1);
    stat(dtmpl, &st);
    printf("  mkdtemp isdir=%d mode=%o\n", S_ISDIR(st.st_mode), st.st_mode & 07777);
    report("mkdtemp rmdir", rmdir(dtmpl));
    int tf = open(".", O_TMPFILE | O_WRONLY, 0640);
    report("O_TMPFILE", tf >= 0 ? 0 : -1);
    report("O_TMPFILE write", write(tf, "anon\n", 5));
    report("linkat AT_EMPTY_PATH", linkat(tf, "", AT_FDCWD, "from-tmpfile", AT_EMPTY_PATH));
    close(tf);
    show_file("from-tmpfile");

    /* read-only files refuse writes to other users; root may write */
    int ro = open("ro.txt", O_WRONLY);
    report("write 0444 as uid==0?", getuid() == 0 ? (ro >= 0 ? 0 : -1) : (ro < 0 ? 0 : -1));
    if (ro >= 0) close(ro);

    list(".");
    return 0;
}
