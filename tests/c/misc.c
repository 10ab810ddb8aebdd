/* Less common read-side calls, printed so the view can be compared with a
 * physical copy: freopen, readdir_r, statfs/statvfs, access modes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

int main(int argc, char **argv) {
    FILE *f = fopen("/dev/null", "r");
    f = freopen(argv[1], "r", f);
    char line[128] = {0};
    printf("freopen %s", f && fgets(line, sizeof line, f) ? line : "(failed)\n");
    DIR *d = opendir(argv[2]);
    struct dirent ent, *res;
    int n = 0;
    while (d && readdir_r(d, &ent, &res) == 0 && res) n++;
    printf("readdir_r %d\n", n);
    struct statfs sf;
    struct statvfs sv;
    printf("statfs %d statvfs %d\n", statfs(argv[1], &sf) == 0, statvfs(argv[1], &sv) == 0);
    printf("access r=%d w=%d x=%d\n", access(argv[1], R_OK) == 0, access(argv[1], W_OK) == 0, access(argv[1], X_OK) == 0);
    return 0;
}
