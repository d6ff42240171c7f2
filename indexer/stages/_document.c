/* The two bulk lines of one document, in C: what DocumentBuilder._lines_py builds as a dict,
 * serializes with orjson and ids with blake2b, written here straight into one buffer. The
 * tests hold the two byte for byte equal on arbitrary documents and ids.
 *
 * assemble(action, hash_head, off, timestamp, message, file_part, stream, level, meta_part,
 *          flags, event_part, original, k8s_part, fields) -> bytes | None
 *
 *     Building the dict, serializing it whole and hashing the id took about 3.5 us a line,
 *     more than half of the indexer's work on a plain line. The parts that are the same for
 *     every line of a file, of a batch or of a pod come in already serialized (by orjson):
 *
 *         action      b'{"create":{"_index":"...","_id":"'
 *         file_part   b'"host":{"name":...},"log":{"file":{"path":...},"offset":'
 *         meta_part   b'"logferry":{"fid":...,"kind":...'
 *         event_part  b'"event":{"ingested":...'
 *         k8s_part    b',"kubernetes":{...}' or None
 *
 *     and the rest is written here: the id (blake2b of hash_head + off, 15 bytes, base64url),
 *     the strings (escaped as orjson escapes them), the offset, the flags and the parsed
 *     fields, top-level keys among the reserved ones left out (configure) as the dict
 *     path leaves them out. A value of a type not written here (a float, an int beyond 64
 *     bits, a tuple, a subclass...) is serialized by orjson.dumps itself (configure), so it
 *     reads as orjson writes it.
 *
 *     None means "take the Python path": a key that is not a str, a str with a lone
 *     surrogate, nesting deeper than MAX_DEPTH, an offset beyond 63 bits, a value orjson
 *     refuses. That path then gives the same bytes or raises orjson's own error.
 *
 * assemble_batch(shape, now, action_for, hash_head, file_part, meta_part, event_part,
 *                k8s_part, offs, lines, stamps, streams, flags, fallback) -> list[bytes]
 *
 *     Every line of a v2 record (one file, one pod): shape(line, ts, now) gives what the
 *     processing stages make of it, and the document is written as by assemble(). The loop
 *     and the calls it replaces in DocumentBuilder cost about 1 us a line in Python.
 *     action_for(ts) gives the start of a line's action line; it is asked again only when a
 *     line's ts[:10] (its index's day) differs from the line before. flags maps a line's
 *     index to the agent's flags for it. A line assemble() would decline is written by
 *     fallback(index, shaped), the Python path, which raises where orjson refuses.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 200 /* orjson itself stops at 255 levels */
#define STACK_BYTES 8192
#define ID_BYTES 15
#define ID_CHARS 20

static PyObject *dumps;    /* orjson.dumps */
static PyObject *reserved; /* RESERVED_FIELDS, a frozenset */

/* -- BLAKE2b (RFC 7693), unkeyed ------------------------------------------------------------ */

static const uint64_t B2_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
    0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
    0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};

static const uint8_t B2_SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

static uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&v, p, 8);
#else
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
#endif
    return v;
}

#define B2_G(a, b, c, d, x, y)              \
    do {                                    \
        v[a] = v[a] + v[b] + (x);           \
        v[d] = rotr64(v[d] ^ v[a], 32);     \
        v[c] = v[c] + v[d];                 \
        v[b] = rotr64(v[b] ^ v[c], 24);     \
        v[a] = v[a] + v[b] + (y);           \
        v[d] = rotr64(v[d] ^ v[a], 16);     \
        v[c] = v[c] + v[d];                 \
        v[b] = rotr64(v[b] ^ v[c], 63);     \
    } while (0)

static void b2_compress(uint64_t h[8], const uint8_t block[128], uint64_t total, int last)
{
    uint64_t v[16], m[16];
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = B2_IV[i];
    }
    v[12] ^= total; /* the high word of the counter stays 0: no input near 2^64 bytes */
    if (last)
        v[14] = ~v[14];
    for (int i = 0; i < 16; i++)
        m[i] = load64(block + 8 * i);
    /* unrolled, the message schedule's indexes are constants: about twice as fast */
#pragma GCC unroll 12
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = B2_SIGMA[r];
        B2_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        B2_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        B2_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        B2_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        B2_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        B2_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        B2_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        B2_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

/* blake2b(head + tail, digest_size=ID_BYTES) */
static void b2_digest(const uint8_t *head, size_t head_len, const char *tail, size_t tail_len,
                      uint8_t out[ID_BYTES])
{
    uint64_t h[8];
    uint8_t block[128];
    size_t fill = 0, total = 0;
    memcpy(h, B2_IV, sizeof h);
    h[0] ^= 0x01010000ULL ^ ID_BYTES;
    for (int part = 0; part < 2; part++) {
        const uint8_t *p = part ? (const uint8_t *)tail : head;
        size_t n = part ? tail_len : head_len;
        while (n > 0) {
            if (fill == 128) { /* only compressed once more input follows: the last block
                                  is compressed as the last */
                total += 128;
                b2_compress(h, block, total, 0);
                fill = 0;
            }
            size_t take = 128 - fill < n ? 128 - fill : n;
            memcpy(block + fill, p, take);
            fill += take;
            p += take;
            n -= take;
        }
    }
    total += fill;
    memset(block + fill, 0, 128 - fill);
    b2_compress(h, block, total, 1);
    for (int i = 0; i < ID_BYTES; i++)
        out[i] = (uint8_t)(h[i / 8] >> (8 * (i % 8)));
}

/* n in decimal, as "%lld" writes it (snprintf's format parsing cost more than the digits);
 * out holds at least 20 bytes. */
static int format_int(long long n, char *out)
{
    char tmp[20];
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    int len = 0, i = 0;
    do {
        tmp[len++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (n < 0)
        out[i++] = '-';
    while (len)
        out[i++] = tmp[--len];
    return i;
}

static const char B64URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* -- the output buffer ------------------------------------------------------------------------ */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
    char stack[STACK_BYTES];
} Buf;

static int grow(Buf *b, Py_ssize_t need)
{
    Py_ssize_t cap = b->cap;
    while (cap - b->len < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *p;
    if (b->p == b->stack) {
        p = PyMem_Malloc((size_t)cap);
        if (p != NULL)
            memcpy(p, b->stack, (size_t)b->len);
    } else {
        p = PyMem_Realloc(b->p, (size_t)cap);
    }
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int put(Buf *b, const char *s, Py_ssize_t n)
{
    if (b->cap - b->len < n && grow(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

#define PUT_LIT(b, lit) put((b), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static int put_bytes(Buf *b, PyObject *bytes)
{
    return put(b, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

/* What emit() and the string writer return besides 0 (written): ERROR with an exception set,
 * FALLBACK without one (the Python path decides). */
#define ERROR (-1)
#define FALLBACK 1

/* 0: copied as is; otherwise the character after the backslash, 'u' for \u00XX. */
static char ESCAPE[256];

static void init_escape(void)
{
    for (int c = 0; c < 0x20; c++)
        ESCAPE[c] = 'u';
    ESCAPE['\b'] = 'b';
    ESCAPE['\t'] = 't';
    ESCAPE['\n'] = 'n';
    ESCAPE['\f'] = 'f';
    ESCAPE['\r'] = 'r';
    ESCAPE['"'] = '"';
    ESCAPE['\\'] = '\\';
}

static int put_str(Buf *b, PyObject *text)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL) { /* a lone surrogate: orjson refuses it with its own error */
        PyErr_Clear();
        return FALLBACK;
    }
    /* the worst case, every byte as \u00XX, reserved once: the loop then never checks */
    if (b->cap - b->len < 6 * n + 2 && grow(b, 6 * n + 2) < 0)
        return ERROR;
    char *out = b->p + b->len;
    *out++ = '"';
    Py_ssize_t run = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char e = ESCAPE[(unsigned char)s[i]];
        if (e == 0)
            continue;
        memcpy(out, s + run, (size_t)(i - run));
        out += i - run;
        run = i + 1;
        *out++ = '\\';
        *out++ = e;
        if (e == 'u') {
            static const char HEX[] = "0123456789abcdef";
            unsigned char c = (unsigned char)s[i];
            *out++ = '0';
            *out++ = '0';
            *out++ = HEX[c >> 4];
            *out++ = HEX[c & 15];
        }
    }
    memcpy(out, s + run, (size_t)(n - run));
    out += n - run;
    *out++ = '"';
    b->len = out - b->p;
    return 0;
}

/* A value orjson writes by its own rules (floats above all): its bytes, as it writes them. */
static int put_dumped(Buf *b, PyObject *value)
{
    PyObject *bytes = PyObject_CallOneArg(dumps, value);
    if (bytes == NULL) {
        PyErr_Clear();
        return FALLBACK;
    }
    int rc = PyBytes_Check(bytes) ? put_bytes(b, bytes) : FALLBACK;
    Py_DECREF(bytes);
    return rc;
}

static int emit(Buf *b, PyObject *value, int depth);

static int emit_items(Buf *b, PyObject *dict, int depth, int skip_reserved, int first)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int rc;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key))
            return FALLBACK;
        if (skip_reserved) {
            int found = PySet_Contains(reserved, key);
            if (found < 0)
                return ERROR;
            if (found)
                continue;
        }
        if (!first && put(b, ",", 1) < 0)
            return ERROR;
        first = 0;
        if ((rc = put_str(b, key)) != 0)
            return rc;
        if (put(b, ":", 1) < 0)
            return ERROR;
        if ((rc = emit(b, value, depth + 1)) != 0)
            return rc;
    }
    return 0;
}

static int emit(Buf *b, PyObject *value, int depth)
{
    int rc;
    if (depth > MAX_DEPTH)
        return FALLBACK;
    if (PyUnicode_CheckExact(value))
        return put_str(b, value);
    if (value == Py_None)
        return PUT_LIT(b, "null");
    if (value == Py_True)
        return PUT_LIT(b, "true");
    if (value == Py_False)
        return PUT_LIT(b, "false");
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow)  /* orjson writes unsigned 64-bit ints too, and refuses more */
            return put_dumped(b, value);
        if (n == -1 && PyErr_Occurred())
            return ERROR;
        char digits[24];
        return put(b, digits, format_int(n, digits));
    }
    if (PyDict_CheckExact(value)) {
        if (put(b, "{", 1) < 0)
            return ERROR;
        if ((rc = emit_items(b, value, depth, 0, 1)) != 0)
            return rc;
        return put(b, "}", 1);
    }
    if (PyList_CheckExact(value)) {
        if (put(b, "[", 1) < 0)
            return ERROR;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
            if (i && put(b, ",", 1) < 0)
                return ERROR;
            if ((rc = emit(b, PyList_GET_ITEM(value, i), depth + 1)) != 0)
                return rc;
        }
        return put(b, "]", 1);
    }
    return put_dumped(b, value);
}

/* -- assemble ---------------------------------------------------------------------------------- */

/* One document's parts; flags_a and flags_b (lists, or NULL) are written as one "flags"
 * list, none when both are empty, as the Python path writes [*flags, *more_flags]. */
typedef struct {
    PyObject *action, *hash_head;
    long long off;
    PyObject *timestamp, *message, *file_part, *stream, *level, *meta_part, *flags_a,
        *flags_b, *event_part, *original, *k8s_part, *fields;
} Doc;

static int put_flags(Buf *b, PyObject *a, PyObject *c)
{
    PyObject *lists[2] = {a, c};
    int first = 1, rc;
    if (PUT_LIT(b, ",\"flags\":[") < 0)
        return ERROR;
    for (int k = 0; k < 2; k++) {
        if (lists[k] == NULL)
            continue;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lists[k]); i++) {
            if (!first && put(b, ",", 1) < 0)
                return ERROR;
            first = 0;
            if ((rc = emit(b, PyList_GET_ITEM(lists[k], i), 3)) != 0)
                return rc;
        }
    }
    return put(b, "]", 1);
}

/* The action line (with the id) and the document: 0, ERROR or FALLBACK. */
static int write_lines(Buf *b, const Doc *d)
{
    char digits[24];
    uint8_t digest[ID_BYTES];
    char id[ID_CHARS];
    int rc, n;

    if (put_bytes(b, d->action) < 0)
        return ERROR;
    n = format_int(d->off, digits);
    b2_digest((const uint8_t *)PyBytes_AS_STRING(d->hash_head),
              (size_t)PyBytes_GET_SIZE(d->hash_head), digits, (size_t)n, digest);
    for (int i = 0, j = 0; i < ID_BYTES; i += 3, j += 4) {
        uint32_t v = ((uint32_t)digest[i] << 16) | ((uint32_t)digest[i + 1] << 8)
                     | digest[i + 2];
        id[j] = B64URL[v >> 18];
        id[j + 1] = B64URL[(v >> 12) & 63];
        id[j + 2] = B64URL[(v >> 6) & 63];
        id[j + 3] = B64URL[v & 63];
    }
    if (put(b, id, ID_CHARS) < 0 || PUT_LIT(b, "\"}}\n{\"@timestamp\":") < 0)
        return ERROR;
    if ((rc = put_str(b, d->timestamp)) != 0)
        return rc;
    if (PUT_LIT(b, ",\"message\":") < 0)
        return ERROR;
    if ((rc = put_str(b, d->message)) != 0)
        return rc;
    if (put(b, ",", 1) < 0 || put_bytes(b, d->file_part) < 0)
        return ERROR;
    if (put(b, digits, n) < 0)
        return ERROR;
    if (d->stream != Py_None && PyUnicode_GET_LENGTH(d->stream) > 0) {
        if (PUT_LIT(b, ",\"stream\":") < 0)
            return ERROR;
        if ((rc = put_str(b, d->stream)) != 0)
            return rc;
    }
    if (d->level != Py_None) {
        if (PUT_LIT(b, ",\"level\":") < 0)
            return ERROR;
        if ((rc = put_str(b, d->level)) != 0)
            return rc;
    }
    if (PUT_LIT(b, "},") < 0 || put_bytes(b, d->meta_part) < 0)
        return ERROR;
    if ((d->flags_a != NULL && PyList_GET_SIZE(d->flags_a) > 0)
        || (d->flags_b != NULL && PyList_GET_SIZE(d->flags_b) > 0)) {
        if ((rc = put_flags(b, d->flags_a, d->flags_b)) != 0)
            return rc;
    }
    if (PUT_LIT(b, "},") < 0 || put_bytes(b, d->event_part) < 0)
        return ERROR;
    if (d->original != Py_None) {
        if (PUT_LIT(b, ",\"original\":") < 0)
            return ERROR;
        if ((rc = put_str(b, d->original)) != 0)
            return rc;
    }
    if (put(b, "}", 1) < 0)
        return ERROR;
    if (d->k8s_part != Py_None && put_bytes(b, d->k8s_part) < 0)
        return ERROR;
    if ((rc = emit_items(b, d->fields, 1, 1, 0)) != 0)
        return rc;
    return PUT_LIT(b, "}\n");
}

/* The bytes of one document, Py_None where the Python path must write it, NULL on error. */
static PyObject *document_bytes(const Doc *d)
{
    Buf b;
    b.p = b.stack;
    b.len = 0;
    b.cap = STACK_BYTES;
    int rc = write_lines(&b, d);
    PyObject *result = NULL;
    if (rc == 0)
        result = PyBytes_FromStringAndSize(b.p, b.len);
    else if (rc == FALLBACK)
        result = Py_NewRef(Py_None);
    if (b.p != b.stack)
        PyMem_Free(b.p);
    return result;
}

static int check(PyObject *value, int (*is)(PyObject *), int none_ok, const char *what)
{
    if ((none_ok && value == Py_None) || is(value))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s must be %s", what,
                 none_ok ? "of its type or None" : "of its type");
    return -1;
}

static int is_bytes(PyObject *o) { return PyBytes_CheckExact(o); }
static int is_str(PyObject *o) { return PyUnicode_CheckExact(o); }
static int is_list(PyObject *o) { return PyList_CheckExact(o); }
static int is_dict(PyObject *o) { return PyDict_CheckExact(o); }
static int is_int(PyObject *o) { return PyLong_CheckExact(o); }

static int ready(void)
{
    if (dumps == NULL || reserved == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return -1;
    }
    return 0;
}

/* off as a C long long: 0, or FALLBACK beyond 64 bits, or ERROR. */
static int offset_of(PyObject *value, long long *off)
{
    int overflow;
    *off = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow)
        return FALLBACK;
    if (*off == -1 && PyErr_Occurred())
        return ERROR;
    return 0;
}

static PyObject *assemble(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 14) {
        PyErr_Format(PyExc_TypeError, "assemble() takes 14 arguments (%zd given)", nargs);
        return NULL;
    }
    if (ready() < 0)
        return NULL;
    if (check(args[0], is_bytes, 0, "action") || check(args[1], is_bytes, 0, "hash_head")
        || check(args[2], is_int, 0, "off") || check(args[3], is_str, 0, "timestamp")
        || check(args[4], is_str, 0, "message") || check(args[5], is_bytes, 0, "file_part")
        || check(args[6], is_str, 1, "stream") || check(args[7], is_str, 1, "level")
        || check(args[8], is_bytes, 0, "meta_part") || check(args[9], is_list, 1, "flags")
        || check(args[10], is_bytes, 0, "event_part") || check(args[11], is_str, 1, "original")
        || check(args[12], is_bytes, 1, "k8s_part") || check(args[13], is_dict, 0, "fields"))
        return NULL;
    Doc d = {args[0], args[1], 0, args[3], args[4], args[5], args[6], args[7], args[8],
             args[9] == Py_None ? NULL : args[9], NULL, args[10], args[11], args[12],
             args[13]};
    int rc = offset_of(args[2], &d.off);
    if (rc == ERROR)
        return NULL;
    if (rc == FALLBACK)
        Py_RETURN_NONE;
    return document_bytes(&d);
}

/* -- assemble_batch ---------------------------------------------------------------------------- */

/* The processing stages' result for one line, checked: (fields, timestamp, level, message,
 * more_flags, original). */
static int unpack_shaped(PyObject *shaped, Doc *d)
{
    if (!PyTuple_CheckExact(shaped) || PyTuple_GET_SIZE(shaped) != 6) {
        PyErr_SetString(PyExc_TypeError, "shape() must return a 6-tuple");
        return -1;
    }
    d->fields = PyTuple_GET_ITEM(shaped, 0);
    d->timestamp = PyTuple_GET_ITEM(shaped, 1);
    d->level = PyTuple_GET_ITEM(shaped, 2);
    d->message = PyTuple_GET_ITEM(shaped, 3);
    d->flags_b = PyTuple_GET_ITEM(shaped, 4);
    d->original = PyTuple_GET_ITEM(shaped, 5);
    if (check(d->fields, is_dict, 0, "shape()'s fields")
        || check(d->timestamp, is_str, 0, "shape()'s timestamp")
        || check(d->level, is_str, 1, "shape()'s level")
        || check(d->message, is_str, 0, "shape()'s message")
        || check(d->flags_b, is_list, 0, "shape()'s flags")
        || check(d->original, is_str, 1, "shape()'s original"))
        return -1;
    return 0;
}

static PyObject *assemble_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 14) {
        PyErr_Format(PyExc_TypeError, "assemble_batch() takes 14 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (ready() < 0)
        return NULL;
    PyObject *shape = args[0], *now = args[1], *action_for = args[2], *offs = args[8],
             *lines = args[9], *stamps = args[10], *streams = args[11], *flags = args[12],
             *fallback = args[13];
    if (check(args[3], is_bytes, 0, "hash_head") || check(args[4], is_bytes, 0, "file_part")
        || check(args[5], is_bytes, 0, "meta_part") || check(args[6], is_bytes, 0, "event_part")
        || check(args[7], is_bytes, 1, "k8s_part") || check(offs, is_list, 0, "offs")
        || check(lines, is_list, 0, "lines") || check(stamps, is_list, 0, "stamps")
        || check(streams, is_list, 0, "streams") || check(flags, is_dict, 0, "flags"))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(lines);
    if (PyList_GET_SIZE(offs) != n || PyList_GET_SIZE(stamps) != n
        || PyList_GET_SIZE(streams) != n) {
        PyErr_SetString(PyExc_ValueError, "assemble_batch(): columns of different lengths");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    Doc d = {NULL, args[3], 0, NULL, NULL, args[4], NULL, NULL, args[5], NULL, NULL, args[6],
             NULL, args[7], NULL};
    /* The action of the day the last line was on: a batch's lines nearly all share it. */
    PyObject *action = NULL;
    char day[10];
    Py_ssize_t day_len = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i), *ts = PyList_GET_ITEM(stamps, i),
                 *off = PyList_GET_ITEM(offs, i), *item = NULL;
        d.stream = PyList_GET_ITEM(streams, i);
        if (check(line, is_str, 0, "a line") || check(ts, is_str, 0, "a ts")
            || check(off, is_int, 0, "an off") || check(d.stream, is_str, 1, "a stream"))
            goto error;
        /* ts[:10] as the key of its action; a ts that is not ASCII is always asked */
        Py_ssize_t len = PyUnicode_GET_LENGTH(ts) < 10 ? PyUnicode_GET_LENGTH(ts) : 10;
        const char *head = PyUnicode_IS_ASCII(ts) ? (const char *)PyUnicode_1BYTE_DATA(ts)
                                                  : NULL;
        if (head == NULL || len != day_len || memcmp(head, day, (size_t)len) != 0) {
            Py_XSETREF(action, PyObject_CallOneArg(action_for, ts));
            if (action == NULL)
                goto error;
            if (!PyBytes_CheckExact(action)) {
                PyErr_SetString(PyExc_TypeError, "action_for() must return bytes");
                goto error;
            }
            day_len = head == NULL ? -1 : len;
            if (head != NULL)
                memcpy(day, head, (size_t)len);
        }
        d.action = action;
        PyObject *call[3] = {line, ts, now};
        PyObject *shaped = PyObject_Vectorcall(shape, call, 3, NULL);
        if (shaped == NULL)
            goto error;
        int rc = unpack_shaped(shaped, &d);
        if (rc == 0) {
            PyObject *key = PyLong_FromSsize_t(i);
            if (key == NULL) {
                rc = -1;
            } else {
                d.flags_a = PyDict_GET_SIZE(flags) ? PyDict_GetItemWithError(flags, key)
                                                   : NULL;
                Py_DECREF(key);
                if (d.flags_a == NULL && PyErr_Occurred())
                    rc = -1;
                else if (d.flags_a != NULL && !PyList_CheckExact(d.flags_a)) {
                    PyErr_SetString(PyExc_TypeError, "flags must map indexes to lists");
                    rc = -1;
                }
            }
        }
        if (rc == 0) {
            rc = offset_of(off, &d.off);
            if (rc == 0) {
                item = document_bytes(&d);
                if (item == Py_None) {
                    Py_CLEAR(item);
                    rc = FALLBACK;
                }
            }
            if (rc == FALLBACK) {  /* the Python twin writes this line, or raises */
                PyObject *index = PyLong_FromSsize_t(i);
                if (index != NULL) {
                    PyObject *fb[2] = {index, shaped};
                    item = PyObject_Vectorcall(fallback, fb, 2, NULL);
                    Py_DECREF(index);
                }
            }
        }
        Py_DECREF(shaped);
        if (item == NULL)
            goto error;
        PyList_SET_ITEM(out, i, item);
    }
    Py_XDECREF(action);
    return out;
error:
    Py_XDECREF(action);
    Py_DECREF(out);
    return NULL;
}

static PyObject *configure(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyCallable_Check(args[0]) || !PyFrozenSet_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(dumps: callable, reserved: frozenset)");
        return NULL;
    }
    Py_XSETREF(dumps, Py_NewRef(args[0]));
    Py_XSETREF(reserved, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyObject *blake2b_id(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "digest(head: bytes, tail: bytes)");
        return NULL;
    }
    uint8_t digest[ID_BYTES];
    b2_digest((const uint8_t *)PyBytes_AS_STRING(args[0]), (size_t)PyBytes_GET_SIZE(args[0]),
              PyBytes_AS_STRING(args[1]), (size_t)PyBytes_GET_SIZE(args[1]), digest);
    return PyBytes_FromStringAndSize((const char *)digest, ID_BYTES);
}

static PyMethodDef methods[] = {
    {"assemble", (PyCFunction)(void (*)(void))assemble, METH_FASTCALL,
     "The two bulk lines of one document; None where the Python path must build them."},
    {"assemble_batch", (PyCFunction)(void (*)(void))assemble_batch, METH_FASTCALL,
     "The bulk lines of every line of a v2 record, shaped and written in one loop."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "The serializer of the values not written here, and the top-level field names the "
     "fields never take."},
    {"digest", (PyCFunction)(void (*)(void))blake2b_id, METH_FASTCALL,
     "blake2b(head + tail, digest_size=15).digest(), for the tests."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "indexer.stages._document",
    "The indexer's document serializer in C; see indexer.stages.document.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__document(void)
{
    init_escape();
    return PyModule_Create(&module);
}
