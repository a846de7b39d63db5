/* safetensors: memory-mapped reading with a fully validated header, F32/BF16/F16 to F32
 * conversion, and streaming atomic writing (see include/mart/safetensors.h).
 *
 * File layout (https://github.com/huggingface/safetensors): 8 bytes little-endian header
 * length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"key": "value"}}, then the data; offsets count from the end of the header. */
#include "mart/safetensors.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB; so do we, before parsing. */
#define ST_MAX_HEADER_BYTES (100LL * 1000 * 1000)

struct st_file {
    char *path;
    void *map; /* whole file, read-only; NULL when the file is empty */
    size_t map_len;
    st_view *views; /* (n) in file order */
    char **names;   /* (n) owned copies of the tensor names */
    int32_t *by_name; /* (n) indices into views, sorted by name (duplicate check, st_find) */
    int32_t n;
    char **meta_keys, **meta_values; /* (n_meta) */
    int32_t n_meta;
};

size_t st_dtype_size(mart_dtype d) {
    switch (d) {
    case MART_DTYPE_F32:
        return 4;
    case MART_DTYPE_BF16:
        return 2;
    case MART_DTYPE_F16:
        return 2;
    }
    assert(0 && "unknown dtype");
    return 0;
}

static const char *dtype_name(mart_dtype d) {
    switch (d) {
    case MART_DTYPE_F32:
        return "F32";
    case MART_DTYPE_BF16:
        return "BF16";
    case MART_DTYPE_F16:
        return "F16";
    }
    return "?";
}

static int dtype_parse(const char *s, mart_dtype *d) {
    if (!strcmp(s, "F32"))
        *d = MART_DTYPE_F32;
    else if (!strcmp(s, "BF16"))
        *d = MART_DTYPE_BF16;
    else if (!strcmp(s, "F16"))
        *d = MART_DTYPE_F16;
    else
        return MART_ERR;
    return MART_OK;
}

/* Other dtypes of the format: valid files, but not weights mart can use. */
static bool dtype_is_other_known(const char *s) {
    static const char *const other[] = {"F64", "I64", "I32", "I16",  "I8",      "U8",
                                        "U16", "U32", "U64", "BOOL", "F8_E4M3", "F8_E5M2"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (!strcmp(s, other[i])) return true;
    return false;
}

static int64_t view_numel(const st_view *v) {
    int64_t n = 1;
    for (int32_t i = 0; i < v->ndim; i++)
        n *= v->shape[i];
    return n;
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    for (int32_t i = 0; i < f->n; i++)
        free(f->names[i]);
    for (int32_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->names);
    free(f->by_name);
    free(f->views);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    free(f);
}

/* Reads a non-negative integer that fits int64 exactly from a JSON number. */
static bool json_to_i64(const cJSON *j, int64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double x = j->valuedouble;
    if (!(x >= 0) || x > 9007199254740992.0 || x != floor(x)) return false;
    *out = (int64_t)x;
    return true;
}

static int parse_metadata(st_file *f, const cJSON *meta, mart_err *err) {
    if (!cJSON_IsObject(meta))
        return mart_fail(err, "%s: header: \"__metadata__\" is not an object", f->path);
    if (f->meta_keys) return mart_fail(err, "%s: header: \"__metadata__\" appears twice", f->path);
    int32_t n = cJSON_GetArraySize(meta);
    f->meta_keys = mart_xcalloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_values = mart_xcalloc((size_t)n + 1, sizeof *f->meta_values);
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return mart_fail(err, "%s: header: metadata \"%s\" is not a string", f->path,
                             kv->string);
        f->meta_keys[f->n_meta] = mart_xstrdup(kv->string);
        f->meta_values[f->n_meta] = mart_xstrdup(kv->valuestring);
        f->n_meta++;
    }
    return MART_OK;
}

/* Fills v (name excepted) from one header entry; data_begin/end are relative offsets. */
static int parse_entry(const st_file *f, const cJSON *e, st_view *v, int64_t *begin, int64_t *end,
                       mart_err *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return mart_fail(err, "%s: tensor \"%s\": header entry is not an object", f->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return mart_fail(err, "%s: tensor \"%s\": missing or non-string \"dtype\"", f->path, name);
    if (dtype_parse(dt->valuestring, &v->dtype) != MART_OK) {
        if (dtype_is_other_known(dt->valuestring))
            return mart_fail(err, "%s: tensor \"%s\": dtype %s is not supported (F32, BF16, F16)",
                             f->path, name, dt->valuestring);
        return mart_fail(err, "%s: tensor \"%s\": unknown dtype \"%s\"", f->path, name,
                         dt->valuestring);
    }
    if (!cJSON_IsArray(sh))
        return mart_fail(err, "%s: tensor \"%s\": missing or non-array \"shape\"", f->path, name);
    int32_t nd = cJSON_GetArraySize(sh);
    if (nd > 4)
        return mart_fail(err, "%s: tensor \"%s\": %d dimensions (at most 4 supported)", f->path,
                         name, nd);
    v->ndim = nd;
    int64_t numel = 1;
    for (int32_t i = 0; i < nd; i++) {
        int64_t s;
        if (!json_to_i64(cJSON_GetArrayItem(sh, i), &s))
            return mart_fail(err, "%s: tensor \"%s\": shape[%d] is not a non-negative integer",
                             f->path, name, i);
        v->shape[i] = s;
        if (s != 0 && numel > INT64_MAX / 8 / s)
            return mart_fail(err, "%s: tensor \"%s\": shape too large", f->path, name);
        numel *= s;
    }
    for (int32_t i = nd; i < 4; i++)
        v->shape[i] = 1;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_to_i64(cJSON_GetArrayItem(off, 0), begin) ||
        !json_to_i64(cJSON_GetArrayItem(off, 1), end))
        return mart_fail(err, "%s: tensor \"%s\": \"data_offsets\" is not [begin, end]", f->path,
                         name);
    if (*end < *begin)
        return mart_fail(err, "%s: tensor \"%s\": data_offsets [%lld, %lld] end before begin",
                         f->path, name, (long long)*begin, (long long)*end);
    int64_t bytes = numel * (int64_t)st_dtype_size(v->dtype);
    if (*end - *begin != bytes)
        return mart_fail(err,
                         "%s: tensor \"%s\": data_offsets [%lld, %lld] hold %lld bytes but "
                         "shape and dtype %s need %lld",
                         f->path, name, (long long)*begin, (long long)*end,
                         (long long)(*end - *begin), dtype_name(v->dtype), (long long)bytes);
    return MART_OK;
}

typedef struct {
    int64_t begin, end;
    int32_t index;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* qsort_r comparison of two view indices by tensor name. */
static int name_cmp(const void *a, const void *b, void *ctx) {
    const st_file *f = ctx;
    return strcmp(f->names[*(const int32_t *)a], f->names[*(const int32_t *)b]);
}

static int parse_header(st_file *f, const char *json, size_t json_len, size_t data_len,
                        mart_err *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, json_len, &end, 0);
    if (!root) {
        long at = end ? (long)(end - json) : 0;
        return mart_fail(err, "%s: header is not valid JSON (near byte %ld of the header)", f->path,
                         at + 8);
    }
    int rc = MART_OK;
    span *spans = NULL;
    if (!cJSON_IsObject(root)) {
        rc = mart_fail(err, "%s: header is not a JSON object", f->path);
        goto done;
    }
    int32_t cap = cJSON_GetArraySize(root);
    f->views = mart_xcalloc((size_t)cap + 1, sizeof *f->views);
    f->names = mart_xcalloc((size_t)cap + 1, sizeof *f->names);
    spans = mart_xcalloc((size_t)cap + 1, sizeof *spans);
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if ((rc = parse_metadata(f, e, err)) != MART_OK) goto done;
            continue;
        }
        st_view *v = &f->views[f->n];
        int64_t b = 0, en = 0;
        if ((rc = parse_entry(f, e, v, &b, &en, err)) != MART_OK) goto done;
        if ((uint64_t)en > data_len) {
            rc = mart_fail(err,
                           "%s: tensor \"%s\": data_offsets [%lld, %lld] point past the end of "
                           "the data (%zu bytes; file truncated?)",
                           f->path, e->string, (long long)b, (long long)en, data_len);
            goto done;
        }
        f->names[f->n] = mart_xstrdup(e->string);
        v->name = f->names[f->n];
        spans[f->n] = (span){b, en, f->n};
        f->n++;
    }
    /* Sorted by name, equal neighbours are a name given twice: O(n log n) for any header. */
    f->by_name = mart_xmalloc(((size_t)f->n + 1) * sizeof *f->by_name);
    for (int32_t i = 0; i < f->n; i++)
        f->by_name[i] = i;
    qsort_r(f->by_name, (size_t)f->n, sizeof *f->by_name, name_cmp, f);
    for (int32_t i = 1; i < f->n; i++)
        if (!strcmp(f->names[f->by_name[i - 1]], f->names[f->by_name[i]])) {
            rc = mart_fail(err, "%s: tensor \"%s\" appears twice in the header", f->path,
                           f->names[f->by_name[i]]);
            goto done;
        }
    /* Sorted by begin, each tensor must start at or after the end of the previous one. */
    qsort(spans, (size_t)f->n, sizeof *spans, span_cmp);
    const span *p = NULL; /* the non-empty tensor reaching furthest so far */
    for (int32_t i = 0; i < f->n; i++) {
        const span *q = &spans[i];
        if (q->end == q->begin) continue; /* empty tensors occupy no bytes */
        if (p && q->begin < p->end) {
            rc = mart_fail(err, "%s: tensors \"%s\" [%lld, %lld] and \"%s\" [%lld, %lld] overlap",
                           f->path, f->names[p->index], (long long)p->begin, (long long)p->end,
                           f->names[q->index], (long long)q->begin, (long long)q->end);
            goto done;
        }
        if (!p || q->end > p->end) p = q;
    }
    const char *data = (const char *)f->map + 8 + json_len;
    for (int32_t i = 0; i < f->n; i++)
        f->views[spans[i].index].data = data + spans[i].begin;
done:
    free(spans);
    cJSON_Delete(root);
    return rc;
}

int st_open(const char *path, st_file **out, mart_err *err) {
    *out = NULL;
    st_file *f = mart_xcalloc(1, sizeof *f);
    f->path = mart_xstrdup(path);
    /* O_NONBLOCK: a FIFO named like a weights file must be refused below, not wait for a
     * writer here. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        mart_fail(err, "%s: cannot open: %s", path, strerror(errno));
        st_close(f);
        return MART_ERR;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        mart_fail(err, "%s: not a regular file", path);
        close(fd);
        st_close(f);
        return MART_ERR;
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        mart_fail(err, "%s: truncated: %zu bytes, shorter than the 8-byte header length", path,
                  size);
        st_close(f);
        return MART_ERR;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        mart_fail(err, "%s: cannot map: %s", path, strerror(errno));
        st_close(f);
        return MART_ERR;
    }
    f->map = map;
    f->map_len = size;
    const unsigned char *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > (uint64_t)ST_MAX_HEADER_BYTES) {
        mart_fail(err, "%s: header length %llu is implausible (not a safetensors file?)", path,
                  (unsigned long long)hlen);
        st_close(f);
        return MART_ERR;
    }
    if (hlen > size - 8) {
        mart_fail(err, "%s: truncated: header of %llu bytes but only %zu bytes follow", path,
                  (unsigned long long)hlen, size - 8);
        st_close(f);
        return MART_ERR;
    }
    if (parse_header(f, (const char *)p + 8, (size_t)hlen, size - 8 - (size_t)hlen, err) !=
        MART_OK) {
        st_close(f);
        return MART_ERR;
    }
    *out = f;
    return MART_OK;
}

int32_t st_count(const st_file *f) {
    return f->n;
}

const st_view *st_get(const st_file *f, int32_t i) {
    assert(i >= 0 && i < f->n);
    return &f->views[i];
}

const st_view *st_find(const st_file *f, const char *name) {
    int32_t lo = 0, hi = f->n; /* binary search over by_name */
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->names[f->by_name[mid]], name);
        if (c == 0) return &f->views[f->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    for (int32_t i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

const char *st_path(const st_file *f) {
    return f->path;
}

void st_release(const st_file *f, const st_view *t) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)f->map, lo = (uintptr_t)t->data;
    uintptr_t hi = lo + (size_t)view_numel(t) * st_dtype_size(t->dtype);
    /* Only whole pages inside the tensor: its neighbours may still be needed. */
    lo = base + (lo - base + page - 1) / page * page;
    hi = base + (hi - base) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* ---- conversion ---- */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13); /* inf / nan */
    } else if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: value man * 2^-24 */
            float x = (float)man * 0x1p-24f;
            memcpy(&u, &x, 4);
            u |= sign;
        }
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t st_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

uint16_t st_f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;  /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: infinity */
    if (a < 0x38800000u) {                      /* below 2^-14: subnormal or zero */
        float f;
        memcpy(&f, &a, 4);
        /* f * 2^24 is exact in float for this range only after rounding: use rint (RNE). */
        return sign | (uint16_t)lrintf(f * 0x1p24f);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1) - (112u << 23);
    return sign | (uint16_t)(r >> 13);
}

void st_to_f32(const st_view *t, float *dst) {
    int64_t n = view_numel(t);
    if (t->dtype == MART_DTYPE_F32) {
        memcpy(dst, t->data, (size_t)n * 4);
        return;
    }
    const unsigned char *src = t->data;
    bool bf = t->dtype == MART_DTYPE_BF16;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2); /* the data may be unaligned */
        dst[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
    }
}

void st_from_f32(const float *src, int64_t n, mart_dtype d, void *dst) {
    if (d == MART_DTYPE_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    uint16_t *o = dst;
    bool bf = d == MART_DTYPE_BF16;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++)
        o[i] = bf ? st_f32_to_bf16(src[i]) : st_f32_to_f16(src[i]);
}

/* ---- writing ---- */

static void copy_fill(void *ctx, int32_t i, const st_view *t, void *dst) {
    (void)ctx;
    (void)i;
    memcpy(dst, t->data, (size_t)view_numel(t) * st_dtype_size(t->dtype));
}

static int write_all(int fd, const void *data, size_t len, const char *path, mart_err *err) {
    if (mart_write_all(fd, data, len) != 0)
        return mart_fail(err, "%s: write failed: %s", path, strerror(errno));
    return MART_OK;
}

int st_save_with(const char *path, const st_view *tensors, int32_t n, const char *const *meta_keys,
                 const char *const *meta_values, int32_t n_meta, st_fill_fn fill, void *ctx,
                 mart_err *err) {
    cJSON *root = cJSON_CreateObject();
    if (n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int32_t i = 0; i < n_meta; i++)
            cJSON_AddStringToObject(meta, meta_keys[i], meta_values[i]);
    }
    int64_t off = 0, max_bytes = 0;
    for (int32_t i = 0; i < n; i++) {
        const st_view *t = &tensors[i];
        assert(t->ndim >= 0 && t->ndim <= 4);
        int64_t bytes = view_numel(t) * (int64_t)st_dtype_size(t->dtype);
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int32_t k = 0; k < t->ndim; k++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[k]));
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
        if (bytes > max_bytes) max_bytes = bytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    /* Pad the header with spaces to a multiple of 8 so that the data is aligned. */
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    unsigned char *head = mart_xmalloc(8 + hlen);
    for (int i = 0; i < 8; i++)
        head[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(head + 8, json, jlen);
    memset(head + 8 + jlen, ' ', hlen - jlen);
    cJSON_free(json);

    size_t tlen = strlen(path) + 32;
    char *tmp = mart_xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%d", path, (int)getpid());
    int rc = MART_OK;
    void *buf = NULL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = mart_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    rc = write_all(fd, head, 8 + hlen, path, err);
    buf = mart_xmalloc((size_t)max_bytes);
    for (int32_t i = 0; i < n && rc == MART_OK; i++) {
        const st_view *t = &tensors[i];
        size_t bytes = (size_t)view_numel(t) * st_dtype_size(t->dtype);
        fill(ctx, i, t, buf);
        rc = write_all(fd, buf, bytes, path, err);
    }
    if (rc == MART_OK && fsync(fd) != 0)
        rc = mart_fail(err, "%s: flush failed: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == MART_OK)
        rc = mart_fail(err, "%s: close failed: %s", path, strerror(errno));
    if (rc == MART_OK && rename(tmp, path) != 0)
        rc = mart_fail(err, "%s: rename failed: %s", path, strerror(errno));
    if (rc != MART_OK) unlink(tmp);
out:
    free(buf);
    free(tmp);
    free(head);
    return rc;
}

int st_save(const char *path, const st_view *tensors, int32_t n, const char *const *meta_keys,
            const char *const *meta_values, int32_t n_meta, mart_err *err) {
    return st_save_with(path, tensors, n, meta_keys, meta_values, n_meta, copy_fill, NULL, err);
}
