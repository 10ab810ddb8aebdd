/* Linked statically (no LD_PRELOAD): makes a FIFO and stats it, so the
 * syscall-level supervisor must serve mknodat. */
#include <stdio.h>
#include <sys/stat.h>
int main(void) {
    if (mkfifo("sfifo", 0600) != 0) { perror("mkfifo"); return 1; }
    struct stat st;
    if (stat("sfifo", &st) != 0) { perror("stat"); return 1; }
    printf("%s\n", S_ISFIFO(st.st_mode) ? "fifo" : "not a fifo");
    return 0;
}
