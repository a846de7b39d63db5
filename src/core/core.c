/* core: errors, allocation, RNG, time, progress, files (see include/mart/core.h); JSON text
 * and JSONL reading are in json.c. */
#include "mart/core.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

/* ---- errors ---- */

int mart_fail(mart_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return MART_ERR;
}

int mart_fail_wrap(mart_err *err, const char *fmt, ...) {
    if (!err) return MART_ERR;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = 0;
    return MART_ERR;
}

/* ---- allocation ---- */

bool mart_fault(mart_fault_kind kind) {
#ifdef MART_FAULTS
    static _Atomic int64_t calls[2];
    static int64_t at[2] = {-1, -1};
    if (at[kind] < 0) {
        const char *v = getenv(kind == MART_FAULT_ALLOC ? "MART_FAULT_ALLOC" : "MART_FAULT_WRITE");
        at[kind] = v ? strtoll(v, NULL, 10) : 0;
    }
    return at[kind] > 0 && ++calls[kind] == at[kind];
#else
    (void)kind;
    return false;
#endif
}

static void oom(size_t n) {
    fprintf(stderr, "mart: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *mart_xmalloc(size_t n) {
    void *p = mart_fault(MART_FAULT_ALLOC) ? NULL : malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *mart_xcalloc(size_t count, size_t size) {
    void *p = mart_fault(MART_FAULT_ALLOC) ? NULL : calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *mart_xrealloc(void *p, size_t n) {
    void *q = mart_fault(MART_FAULT_ALLOC) ? NULL : realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

int mart_write_all(int fd, const void *data, size_t len) {
    if (mart_fault(MART_FAULT_WRITE)) {
        errno = ENOSPC;
        return -1;
    }
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

char *mart_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = mart_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

char *mart_xstrcat(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = mart_xmalloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

void *mart_aligned_alloc(size_t n) {
    void *p = NULL;
    if (mart_fault(MART_FAULT_ALLOC) || posix_memalign(&p, 64, n ? n : 64) != 0) oom(n);
    return p;
}

void mart_aligned_free(void *p) {
    free(p);
}

void mart_buf_append(mart_buf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        b->data = mart_xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

void mart_buf_printf(mart_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    char *tmp = mart_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mart_buf_append(b, tmp, (size_t)n);
    free(tmp);
}

void mart_buf_free(mart_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- RNG: xoshiro256** seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mart_rng_seed(mart_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    splitmix64(&x);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t mart_rng_u64(mart_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mart_rng_uniform(mart_rng *r) {
    return (double)(mart_rng_u64(r) >> 11) * 0x1.0p-53;
}

float mart_rng_normal(mart_rng *r) {
    double u1 = mart_rng_uniform(r), u2 = mart_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

int64_t mart_rng_range(mart_rng *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1;
    if (span == 0) return (int64_t)mart_rng_u64(r);
    uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t x;
    do x = mart_rng_u64(r);
    while (x >= limit);
    return lo + (int64_t)(x % span);
}

void mart_rng_shuffle_i32(mart_rng *r, int32_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = mart_rng_range(r, 0, i);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---- time and progress ---- */

double mart_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_secs(char *buf, size_t cap, double s) {
    if (s < 0 || !isfinite(s)) snprintf(buf, cap, "?");
    else if (s < 90) snprintf(buf, cap, "%.0fs", s);
    else if (s < 5400) snprintf(buf, cap, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else snprintf(buf, cap, "%.0fh%02.0fm", floor(s / 3600), fmod(floor(s / 60), 60));
}

static void progress_draw(mart_progress *p, bool final) {
    double now = mart_now(), el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : -1;
    char e1[32], e2[32];
    fmt_secs(e1, sizeof e1, el);
    fmt_secs(e2, sizeof e2, final ? 0 : eta);
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    char bar[25];
    int w = 24, fill = (int)(frac * w);
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    if (p->tty)
        fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %3.0f%% %.2f/s %s ETA %s%s%s", p->label, bar,
                (long long)p->done, (long long)p->total, 100 * frac, rate, e1, e2,
                p->extra[0] ? " | " : "", p->extra);
    else
        fprintf(stderr, "%s %lld/%lld %3.0f%% %.2f/s elapsed %s ETA %s%s%s\n", p->label,
                (long long)p->done, (long long)p->total, 100 * frac, rate, e1, e2,
                p->extra[0] ? " | " : "", p->extra);
    if (final && p->tty) fputc('\n', stderr);
    fflush(stderr);
    p->t_last_draw = now;
}

void mart_progress_start(mart_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->t_start = mart_now();
    p->tty = isatty(2);
    const char *env = getenv("MART_PROGRESS");
    p->enabled = env ? atoi(env) != 0 : p->tty;
    p->t_last_draw = -1e9;
}

void mart_progress_update(mart_progress *p, int64_t done, const char *extra) {
    p->done = done;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    if (!p->enabled) return;
    double gap = p->tty ? 0.1 : 5.0;
    if (mart_now() - p->t_last_draw >= gap) progress_draw(p, false);
}

void mart_progress_finish(mart_progress *p) {
    if (p->enabled) progress_draw(p, true);
}

/* ---- files ---- */

int mart_read_file(const char *path, char **data, size_t *len, mart_err *err) {
    /* O_NONBLOCK so that a FIFO is refused below instead of waiting for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return mart_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mart_fail(err, "%s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return mart_fail(err, "%s: cannot open: %s", path, strerror(errno));
    }
    mart_buf b = {0};
    char tmp[1 << 16];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) mart_buf_append(&b, tmp, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        mart_buf_free(&b);
        return mart_fail(err, "%s: read error", path);
    }
    if (!b.data) mart_buf_append(&b, "", 0);
    *data = b.data;
    if (len) *len = b.len;
    return MART_OK;
}

int mart_write_file_atomic(const char *path, const void *data, size_t len, mart_err *err) {
    size_t n = strlen(path) + 32;
    char *tmp = mart_xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        mart_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return MART_ERR;
    }
    if (mart_write_all(fd, data, len) != 0) {
        mart_fail(err, "%s: write failed: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return MART_ERR;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        mart_fail(err, "%s: flush failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return MART_ERR;
    }
    if (rename(tmp, path) != 0) {
        mart_fail(err, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return MART_ERR;
    }
    free(tmp);
    return MART_OK;
}

int mart_mkdirs(const char *path, mart_err *err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return mart_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return mart_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
    if (!mart_is_dir(buf)) return mart_fail(err, "%s: exists and is not a directory", buf);
    return MART_OK;
}

bool mart_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool mart_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *mart_path_join(char *buf, size_t cap, const char *dir, const char *name) {
    size_t n = strlen(dir);
    if (n > 0 && dir[n - 1] == '/') snprintf(buf, cap, "%s%s", dir, name);
    else snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

int mart_remove_tree(const char *path, mart_err *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return MART_OK;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return mart_fail(err, "%s: cannot open directory: %s", path, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[4096];
            mart_path_join(sub, sizeof sub, path, e->d_name);
            if (mart_remove_tree(sub, err) != MART_OK) {
                closedir(d);
                return MART_ERR;
            }
        }
        closedir(d);
        if (rmdir(path) != 0) return mart_fail(err, "%s: cannot remove: %s", path, strerror(errno));
    } else if (unlink(path) != 0) {
        return mart_fail(err, "%s: cannot remove: %s", path, strerror(errno));
    }
    return MART_OK;
}

/* ---- hashing ---- */

uint64_t mart_fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* ---- misc ---- */

int mart_threads(void) {
    return omp_get_max_threads();
}

static volatile sig_atomic_t stop_flag = 0;

static void on_stop(int sig) {
    if (stop_flag) _exit(128 + sig);
    stop_flag = sig;
}

void mart_install_stop_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool mart_stop_requested(void) {
    return stop_flag != 0;
}

int mart_stop_signal(void) {
    return stop_flag;
}

int64_t mart_rss_bytes(bool peak) {
    if (peak) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (int64_t)ru.ru_maxrss * 1024;
    }
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = 0, rss = 0;
    int ok = fscanf(f, "%ld %ld", &pages, &rss);
    fclose(f);
    return ok == 2 ? (int64_t)rss * sysconf(_SC_PAGESIZE) : -1;
}

int64_t mart_mem_available(void) {
    int64_t avail = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) {
                avail = (int64_t)kb * 1024;
                break;
            }
        fclose(f);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        int64_t used = 0;
        FILE *s = fopen("/proc/self/statm", "r");
        long pages = 0;
        if (s && fscanf(s, "%ld", &pages) == 1) used = (int64_t)pages * sysconf(_SC_PAGESIZE);
        if (s) fclose(s);
        int64_t left = (int64_t)rl.rlim_cur > used ? (int64_t)rl.rlim_cur - used : 0;
        if (avail < 0 || left < avail) avail = left;
    }
    return avail;
}

int mart_check_memory(double need_bytes, const char *what, mart_err *err) {
    int64_t avail = mart_mem_available();
    if (avail < 0 || need_bytes <= (double)avail) return MART_OK;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    return mart_fail(err, "%s would need %.3g GiB of memory, but %.3g GiB is available", what,
                     need_bytes / gib, (double)avail / gib);
}
