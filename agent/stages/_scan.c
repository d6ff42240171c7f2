/* The agent's two hottest loops in C: a chunk read from a file (whole lines, without the last
 * newline) into the columns of its lines. Each returns exactly what its pure-Python twin
 * returns (the tests hold them equal on arbitrary input); built as an optional extension
 * (setup.py), and without a compiler the twins are used.
 *
 * cri(body: bytes, start: int) -> (offsets, stamps, streams, messages, partial) | None
 *     agent.stages.cri.scan_chunk_py: for a body whose every line (split at "\n") is a CRI
 *     line as CRI_LINE reads it and which is valid UTF-8, the lines' start offsets plus one
 *     past the last newline, their timestamps, streams and messages as str, and the indices
 *     of the P pieces; None for any other body, which the caller then takes line by line.
 *     The regex pass it replaces built a tuple and four str per line, then zip and the
 *     offsets took three more passes: 2.6 us a line against 0.5 here.
 *
 * lines(body: bytes, start: int) -> (offsets, texts) | None
 *     agent.stages.framing.split_lines_py: a plain file's chunk as its lines' start offsets
 *     plus one past the last newline, and their text; None if it is not valid UTF-8. One pass
 *     instead of a decode, a split and two passes for the offsets.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *STDOUT_STR;
static PyObject *STDERR_STR;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of a CRI timestamp at p (of at most n bytes), 0 if there is none: the shapes of
 * CRI_LINE's first group, "YYYY-MM-DDTHH:MM:SS" [".f" with 1-9 digits] ("Z" | "+hh:mm" |
 * "-hh:mm"), ASCII digits only. */
static Py_ssize_t timestamp_len(const char *p, Py_ssize_t n)
{
    static const char shape[] = "0000-00-00T00:00:00";
    Py_ssize_t i;
    if (n < 20)
        return 0;
    for (i = 0; i < 19; i++) {
        if (shape[i] == '0') {
            if (!is_digit(p[i]))
                return 0;
        } else if (p[i] != shape[i]) {
            return 0;
        }
    }
    if (p[i] == '.') {
        Py_ssize_t digits = 0;
        i++;
        while (i < n && is_digit(p[i]))
            i++, digits++;
        if (digits < 1 || digits > 9)
            return 0;
    }
    if (i < n && p[i] == 'Z')
        return i + 1;
    if (i + 6 <= n && (p[i] == '+' || p[i] == '-') && is_digit(p[i + 1]) && is_digit(p[i + 2])
        && p[i + 3] == ':' && is_digit(p[i + 4]) && is_digit(p[i + 5]))
        return i + 6;
    return 0;
}

/* Lines in a chunk: one more than its newlines. */
static Py_ssize_t count_lines(const char *body, Py_ssize_t len)
{
    const char *p, *end = body + len;
    Py_ssize_t count = 1;
    for (p = body; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        count++;
    return count;
}

/* A new str of the bytes; Py_None (a new reference) when they are not valid UTF-8, which
 * sends the caller's chunk to the Python path; NULL with an exception on any other error. */
static PyObject *utf8_str(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_DecodeUTF8(p, n, NULL);
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        Py_INCREF(Py_None);
        return Py_None;
    }
    return s;
}

static PyObject *ascii_str(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    return s;
}

/* 1 if it fits the grammar (then the parts are set), 0 if not. */
static int parse_line(const char *p, Py_ssize_t n, Py_ssize_t *ts_len, PyObject **stream,
                      int *partial, Py_ssize_t *msg_start)
{
    Py_ssize_t t = timestamp_len(p, n);
    const char *s;
    if (t == 0 || n < t + 10 || p[t] != ' ')
        return 0;
    s = p + t + 1;
    if (memcmp(s, "stdout ", 7) == 0)
        *stream = STDOUT_STR;
    else if (memcmp(s, "stderr ", 7) == 0)
        *stream = STDERR_STR;
    else
        return 0;
    if ((s[7] != 'F' && s[7] != 'P') || s[8] != ' ')
        return 0;
    *ts_len = t;
    *partial = s[7] == 'P';
    *msg_start = t + 10;
    return 1;
}

/* offsets[index] = value, in a list sized beforehand; -1 if out of memory. */
static int set_offset(PyObject *offsets, Py_ssize_t index, Py_ssize_t value)
{
    PyObject *item = PyLong_FromSsize_t(value);
    if (item == NULL)
        return -1;
    PyList_SET_ITEM(offsets, index, item);
    return 0;
}

static PyObject *cri(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, pos = 0, index = 0, lines;
    PyObject *offsets = NULL, *stamps = NULL, *streams = NULL, *messages = NULL;
    PyObject *partial = NULL, *result = NULL, *item;
    PyObject *last_stamp = NULL; /* equal neighbours share one str */
    const char *body, *last_ts = NULL;
    Py_ssize_t last_ts_len = 0;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*n:cri", &view, &start))
        return NULL;
    body = (const char *)view.buf;
    lines = count_lines(body, view.len);
    /* Sized once and filled in place; a list left partly filled on the way out is fine to
     * free (empty slots are NULL). */
    if (!(offsets = PyList_New(lines + 1)) || !(stamps = PyList_New(lines))
        || !(streams = PyList_New(lines)) || !(messages = PyList_New(lines))
        || !(partial = PyList_New(0)))
        goto done;
    for (;;) {
        const char *line = body + pos;
        const char *nl = memchr(line, '\n', (size_t)(view.len - pos));
        Py_ssize_t n = nl ? nl - line : view.len - pos;
        Py_ssize_t ts_len, msg_start;
        PyObject *stream;
        int is_partial;

        if (!parse_line(line, n, &ts_len, &stream, &is_partial, &msg_start)) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        if (set_offset(offsets, index, start + pos) < 0)
            goto done;
        if (last_stamp == NULL || ts_len != last_ts_len || memcmp(line, last_ts, ts_len) != 0) {
            if ((last_stamp = ascii_str(line, ts_len)) == NULL)
                goto done;
            last_ts = line;
            last_ts_len = ts_len;
        } else {
            Py_INCREF(last_stamp);
        }
        PyList_SET_ITEM(stamps, index, last_stamp);
        Py_INCREF(stream);
        PyList_SET_ITEM(streams, index, stream);
        item = utf8_str(line + msg_start, n - msg_start);
        if (item == NULL || item == Py_None) {
            result = item;
            goto done;
        }
        PyList_SET_ITEM(messages, index, item);
        if (is_partial) {
            item = PyLong_FromSsize_t(index);
            if (item == NULL || PyList_Append(partial, item) < 0) {
                Py_XDECREF(item);
                goto done;
            }
            Py_DECREF(item);
        }
        index++;
        pos += n + 1;
        if (nl == NULL)
            break;
    }
    if (set_offset(offsets, index, start + pos) < 0)  /* one past the last newline */
        goto done;
    result = PyTuple_Pack(5, offsets, stamps, streams, messages, partial);

done:
    Py_XDECREF(offsets);
    Py_XDECREF(stamps);
    Py_XDECREF(streams);
    Py_XDECREF(messages);
    Py_XDECREF(partial);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *lines(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, pos = 0, index = 0, count;
    PyObject *offsets = NULL, *texts = NULL, *result = NULL, *item;
    const char *body;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*n:lines", &view, &start))
        return NULL;
    body = (const char *)view.buf;
    count = count_lines(body, view.len);
    if (!(offsets = PyList_New(count + 1)) || !(texts = PyList_New(count)))
        goto done;
    for (;;) {
        const char *line = body + pos;
        const char *nl = memchr(line, '\n', (size_t)(view.len - pos));
        Py_ssize_t n = nl ? nl - line : view.len - pos;

        if (set_offset(offsets, index, start + pos) < 0)
            goto done;
        item = utf8_str(line, n);
        if (item == NULL || item == Py_None) {
            result = item;
            goto done;
        }
        PyList_SET_ITEM(texts, index, item);
        index++;
        pos += n + 1;
        if (nl == NULL)
            break;
    }
    if (set_offset(offsets, index, start + pos) < 0)  /* one past the last newline */
        goto done;
    result = PyTuple_Pack(2, offsets, texts);

done:
    Py_XDECREF(offsets);
    Py_XDECREF(texts);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"cri", cri, METH_VARARGS,
     "cri(body, start) -> (offsets, stamps, streams, messages, partial) or None; "
     "see agent.stages.cri.scan_chunk."},
    {"lines", lines, METH_VARARGS,
     "lines(body, start) -> (offsets, texts) or None; see agent.stages.framing.split_lines."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "agent.stages._scan",
    "Chunks of CRI or plain lines into columns, in C (agent.stages.cri.scan_chunk, "
    "agent.stages.framing.split_lines).", -1, methods,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    STDOUT_STR = PyUnicode_InternFromString("stdout");
    STDERR_STR = PyUnicode_InternFromString("stderr");
    if (STDOUT_STR == NULL || STDERR_STR == NULL)
        return NULL;
    return PyModule_Create(&module);
}
