/*
 * LD_PRELOAD shim for scripts/hot-text/profile.py: makes the kernel show which pages of the
 * main executable's code a run executes, page by page.
 *
 * A file-backed page fault normally maps up to 64 KiB around the faulting page (fault-around),
 * and whole large folios on newer kernels, so /proc/<pid>/pagemap shows far more than what ran.
 * Fault-around never crosses a mapping's end, so this shim splits the executable's code mapping
 * into one mapping per page (every other page gets PROT_WRITE too, so that neighbours cannot
 * merge back) and drops what the loader mapped already. From then on a code page is present
 * only if something executed it (or read it as data). SIGUSR2 drops the code pages again, so
 * that the next phase of the run is measured on its own.
 *
 * For profiling only: it leaves the binary's code writable.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned long code_lo, code_hi;

static void drop_code(int sig) {
    (void)sig;
    if (code_hi > code_lo) madvise((void *)code_lo, code_hi - code_lo, MADV_DONTNEED);
}

__attribute__((constructor)) static void split(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return;
    char line[8192];
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perm[8], path[4096] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095s", &lo, &hi, perm, path) < 3) continue;
        if (strcmp(path, exe) == 0 && perm[2] == 'x') {
            code_lo = lo;
            code_hi = hi;
            break;
        }
    }
    fclose(maps);
    if (code_hi <= code_lo) return;
    for (unsigned long p = code_lo; p < code_hi; p += 8192)
        mprotect((void *)p, 4096, PROT_READ | PROT_EXEC | PROT_WRITE);
    drop_code(0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = drop_code;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
