/* tests/fuzz/fuzz_common.c — see fuzz_common.h. */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[PATH_MAX];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0 || strcmp(path, scratch) == 0)
        remove(path);
    return 0;
}

static void scratch_remove(void)
{
    if (scratch[0])
        nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_scratch_dir(const char *name)
{
    if (scratch[0])
        return scratch;
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/tfs_fuzz_%s_XXXXXX", tmp && *tmp ? tmp : "/tmp",
             name);
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        abort();
    }
    atexit(scratch_remove);
    return scratch;
}

static int rm_below(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

void fuzz_empty_dir(const char *dir)
{
    nftw(dir, rm_below, 16, FTW_DEPTH | FTW_PHYS);
}

int fuzz_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(path, 0700);
        *s = '/';
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return false;
    *out = v;
    return true;
}

tfs_record *fuzz_record_from_lines(tfs_arena *a, const tfs_sdk_entity *e, const uint8_t *data,
                                   size_t size)
{
    tfs_record *r = tfs_record_new(a, e);
    if (!r)
        return NULL;
    size_t at = 0;
    for (size_t i = 0; i < e->n_fields && at <= size; i++) {
        const uint8_t *nl = at < size ? memchr(data + at, '\n', size - at) : NULL;
        size_t len = nl ? (size_t)(nl - (data + at)) : size - at;
        const char *line = (const char *)data + at;
        at += len + 1;
        if (len == 2 && memcmp(line, "\\N", 2) == 0)
            continue;
        tfs_sdk_type want = e->fields[i].type;
        if (len >= 2 && line[1] == ':' && strchr("ifsdb", line[0])) {
            want = line[0] == 'i'   ? TFS_SDK_INT64
                   : line[0] == 'f' ? TFS_SDK_FLOAT64
                   : line[0] == 's' ? TFS_SDK_TEXT
                   : line[0] == 'd' ? TFS_SDK_DECIMAL
                                    : TFS_SDK_BOOL;
            line += 2;
            len -= 2;
        }
        char *text = tfs_arena_alloc(a, len + 1);
        if (!text)
            return NULL;
        memcpy(text, line, len);
        text[len] = '\0';
        tfs_value *v = &r->values[i];
        int64_t n;
        switch (want) {
        case TFS_SDK_INT64:
            *v = (tfs_value){.type = TFS_SDK_INT64, .u.i = parse_int(text, &n) ? n : (int64_t)len};
            break;
        case TFS_SDK_FLOAT64:
            *v = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = strtod(text, NULL)};
            break;
        case TFS_SDK_BOOL:
            *v = (tfs_value){.type = TFS_SDK_BOOL, .u.b = len > 0 && strchr("1tTyY", text[0])};
            break;
        case TFS_SDK_NULL:
            break;
        default:
            *v = (tfs_value){.type = want, .len = (uint32_t)len, .u.s = text};
            break;
        }
    }
    return r;
}

bool fuzz_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

bool fuzz_json_same(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!fuzz_json_same(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        const char *k;
        const json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach((json_t *)a, k, v) {
            const json_t *w = json_object_get(b, k);
            if (!w || !fuzz_json_same(v, w))
                return false;
        }
        return true;
    }
    return json_equal(a, b);
}
