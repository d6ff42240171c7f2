/* The level a plain-text line announces, in C: indexer.stages.levels.detect_level_py for a
 * line whose first 100 characters are ASCII (nearly every line), and that function itself
 * for any other line (set_fallback). The tests hold the two equal on arbitrary lines and pin
 * the name tables to the Python ones.
 *
 * detect(message: str) -> "trace" | "debug" | "info" | "warn" | "error" | "fatal" | None
 *     The Python twin runs up to six regex searches and a lower() over the head of every
 *     line an app wrote as free text: about 4 us a line, half of the indexer's work on such
 *     a line. Here it is one pass over at most 100 bytes.
 *
 * The rules, in the twin's order (see its docstring): glog "E1125 10:", kernel "<3>", a line
 * starting with "Error:", the leftmost "level=" / "lvl:" / "severity" pair, then the leftmost
 * "[warn]" / "<core:error>" before it, then the leftmost upper-case token "ERROR" before
 * either; every search is limited to the 100-character head.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define HEAD_CHARS 100
#define NO_LEVEL (-1)

static const char *const LEVEL_NAMES[6] = {"trace", "debug", "info", "warn", "error", "fatal"};
static PyObject *LEVEL_STR[6];
static PyObject *fallback;

/* normalize_level's names made of letters only, in lower case (what "level=<letters>" can
 * give), and whether each is also a word that counts in free text (levels._WORDS: 3 letters
 * or more, and not log, fine, config). */
typedef struct {
    const char *name;
    int level;
    int word;
} Name;

static const Name NAMES[] = {
    {"trace", 0, 1}, {"trc", 0, 1}, {"finest", 0, 1}, {"finer", 0, 1}, {"verbose", 0, 1},
    {"v", 0, 0},
    {"debug", 1, 1}, {"dbg", 1, 1}, {"d", 1, 0}, {"fine", 1, 0}, {"config", 1, 0},
    {"info", 2, 1}, {"inf", 2, 1}, {"information", 2, 1}, {"informational", 2, 1},
    {"i", 2, 0}, {"notice", 2, 1}, {"log", 2, 0},
    {"warn", 3, 1}, {"warning", 3, 1}, {"wrn", 3, 1}, {"w", 3, 0},
    {"error", 4, 1}, {"err", 4, 1}, {"eror", 4, 1}, {"e", 4, 0}, {"severe", 4, 1},
    {"dpanic", 4, 1},
    {"fatal", 5, 1}, {"ftl", 5, 1}, {"f", 5, 0}, {"critical", 5, 1}, {"crit", 5, 1},
    {"alert", 5, 1}, {"emerg", 5, 1}, {"emergency", 5, 1}, {"panic", 5, 1}, {"a", 5, 0},
    {NULL, 0, 0},
};
#define LONGEST_NAME 13

/* Syslog severities 0-7 (kernel "<N>"). */
static const int BY_DIGIT[8] = {5, 5, 5, 4, 3, 2, 2, 1};

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
/* \w and str.isalnum() on ASCII */
static int is_word(char c) { return is_alpha(c) || is_digit(c) || c == '_'; }
static char lower(char c) { return is_upper(c) ? (char)(c + 32) : c; }

/* The level of s[0:n], compared in lower case (or only if all upper case, with upper_only);
 * words_only: only names in _WORDS. */
static int find_name(const char *s, Py_ssize_t n, int words_only, int upper_only)
{
    char buf[LONGEST_NAME];
    const Name *name;
    Py_ssize_t i;
    if (n < 1 || n > LONGEST_NAME)
        return NO_LEVEL;
    for (i = 0; i < n; i++) {
        if (upper_only && !is_upper(s[i]))
            return NO_LEVEL;
        buf[i] = lower(s[i]);
    }
    for (name = NAMES; name->name != NULL; name++) {
        if ((words_only && !name->word) || name->name[0] != buf[0])
            continue;
        if ((Py_ssize_t)strlen(name->name) == n && memcmp(name->name, buf, (size_t)n) == 0)
            return name->level;
    }
    return NO_LEVEL;
}

/* _KV_VALUE.match(head, i): \"?[=:] ?[\"']?([A-Za-z]+), then normalize_level of the word. */
static int kv_value(const char *h, Py_ssize_t len, Py_ssize_t i)
{
    Py_ssize_t j;
    if (i < len && h[i] == '"')
        i++;
    if (!(i < len && (h[i] == '=' || h[i] == ':')))
        return NO_LEVEL;
    i++;
    if (i < len && h[i] == ' ')
        i++;
    if (i < len && (h[i] == '"' || h[i] == '\''))
        i++;
    for (j = i; j < len && is_alpha(h[j]); j++)
        ;
    return find_name(h + i, j - i, 0, 0);
}

/* A level word at s (letters up to a closing bracket before lim) of _BRACKETED. */
static int bracketed_word(const char *h, Py_ssize_t lim, Py_ssize_t s)
{
    Py_ssize_t j;
    for (j = s; j < lim && is_alpha(h[j]); j++)
        ;
    if (j == s || j >= lim || !(h[j] == ']' || h[j] == ')' || h[j] == '>'))
        return NO_LEVEL;
    return find_name(h + s, j - s, 1, 0);
}

/* Where ``key`` (lower case) ends if h[at:] starts with it in any case, else -1. */
static Py_ssize_t key_end(const char *h, Py_ssize_t len, Py_ssize_t at, const char *key)
{
    Py_ssize_t k, n = (Py_ssize_t)strlen(key);
    if (at + n > len)
        return -1;
    for (k = 0; k < n; k++)
        if (lower(h[at + k]) != key[k])
            return -1;
    return at + n;
}

static int detect_head(const char *h, Py_ssize_t len)
{
    static const char *const keys[3] = {"level", "lvl", "severity"};
    Py_ssize_t at, i, j, lim, best_at = HEAD_CHARS;
    int best = NO_LEVEL, level, k;
    char first = len > 0 ? h[0] : '\0';

    /* glog/klog: ([IWEF])\d{4} \d\d: */
    if ((first == 'I' || first == 'W' || first == 'E' || first == 'F') && len >= 9
            && is_digit(h[1]) && is_digit(h[2]) && is_digit(h[3]) && is_digit(h[4])
            && h[5] == ' ' && is_digit(h[6]) && is_digit(h[7]) && h[8] == ':')
        return first == 'I' ? 2 : first == 'W' ? 3 : first == 'E' ? 4 : 5;
    /* kernel priority <0>-<7> */
    if (first == '<' && len >= 3 && h[2] == '>' && h[1] >= '0' && h[1] <= '7')
        return BY_DIGIT[h[1] - '0'];
    /* ([A-Za-z]+): at the start */
    for (i = 0; i < len && is_alpha(h[i]); i++)
        ;
    if (i > 0 && i < len && h[i] == ':' && (level = find_name(h, i, 1, 0)) != NO_LEVEL)
        return level;

    /* the leftmost key=value pair with a level value */
    for (at = 0; at < len && best == NO_LEVEL; at++) {
        if (lower(h[at]) != 'l' && lower(h[at]) != 's')  /* the keys' first letters */
            continue;
        for (k = 0; k < 3; k++) {
            Py_ssize_t end = key_end(h, len, at, keys[k]);
            if (end >= 0 && (level = kv_value(h, len, end)) != NO_LEVEL) {
                best_at = at;
                best = level;
                break;
            }
        }
    }

    /* the leftmost [level] / <prefix:level> / (level) ending before best_at */
    lim = len < best_at ? len : best_at;
    for (at = 0; at < lim; at++) {
        if (!(h[at] == '[' || h[at] == '<' || h[at] == '('))
            continue;
        for (j = at + 1; j < lim && is_word(h[j]); j++)
            ;
        level = NO_LEVEL;
        if (j > at + 1 && j < lim && h[j] == ':')
            level = bracketed_word(h, lim, j + 1);
        if (level == NO_LEVEL)
            level = bracketed_word(h, lim, at + 1);
        if (level != NO_LEVEL) {
            best_at = at;
            best = level;
            break;
        }
    }

    /* the leftmost upper-case token before that: a whole \w run, not glued to [\w.-] on either
     * side (a position inside a run has a word character before it, so only run starts can
     * answer) */
    lim = len < best_at ? len : best_at;
    for (at = 0; at < lim; at = j > at ? j : at + 1) {
        j = at;
        if (!is_word(h[at]))
            continue;
        for (j = at; j < lim && is_word(h[j]); j++)
            ;
        if (!is_upper(h[at]) || (j < lim && (h[j] == '.' || h[j] == '-')))
            continue;
        if (at > 0 && (h[at - 1] == '.' || h[at - 1] == '-' || is_word(h[at - 1])))
            continue;
        if ((level = find_name(h + at, j - at, 1, 1)) != NO_LEVEL)
            return level;
    }
    return best;
}

/* The Python twin's answer: for a head that is not ASCII, and for a str subclass (whose
 * slicing or lower() may be its own). */
static PyObject *ask_twin(PyObject *message)
{
    PyObject *function = fallback, *result;
    if (function == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no fallback set");
        return NULL;
    }
    Py_INCREF(function);  /* it may call set_fallback() itself */
    result = PyObject_CallOneArg(function, message);
    Py_DECREF(function);
    return result;
}

static PyObject *detect(PyObject *self, PyObject *message)
{
    char buf[HEAD_CHARS];
    const char *head;
    Py_ssize_t len, i;
    int level;
    (void)self;
    if (!PyUnicode_CheckExact(message)) {
        if (PyUnicode_Check(message))
            return ask_twin(message);
        PyErr_SetString(PyExc_TypeError, "detect() takes a str");
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    /* a str made by the deprecated wchar_t APIs reads as empty until made ready */
    if (PyUnicode_READY(message) < 0)
        return NULL;
#endif
    len = PyUnicode_GET_LENGTH(message);
    if (len > HEAD_CHARS)
        len = HEAD_CHARS;
    if (PyUnicode_IS_ASCII(message)) {
        head = (const char *)PyUnicode_1BYTE_DATA(message);
    } else {
        int kind = PyUnicode_KIND(message);
        const void *data = PyUnicode_DATA(message);
        for (i = 0; i < len; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c > 127)  /* Unicode case mapping, \w and isalnum(): the twin's business */
                return ask_twin(message);
            buf[i] = (char)c;
        }
        head = buf;
    }
    level = detect_head(head, len);
    if (level == NO_LEVEL)
        Py_RETURN_NONE;
    return Py_NewRef(LEVEL_STR[level]);
}

static PyObject *set_fallback(PyObject *self, PyObject *function)
{
    (void)self;
    if (!PyCallable_Check(function)) {
        PyErr_SetString(PyExc_TypeError, "set_fallback() takes a callable");
        return NULL;
    }
    Py_XSETREF(fallback, Py_NewRef(function));
    Py_RETURN_NONE;
}

/* The tables, for the test that pins them to indexer.stages.levels. */
static PyObject *names(PyObject *self, PyObject *unused)
{
    const Name *name;
    PyObject *all = PyDict_New(), *words = PySet_New(NULL);
    (void)self;
    (void)unused;
    if (all == NULL || words == NULL)
        goto fail;
    for (name = NAMES; name->name != NULL; name++) {
        PyObject *key = PyUnicode_FromString(name->name);
        int bad = key == NULL || PyDict_SetItem(all, key, LEVEL_STR[name->level]) < 0
                  || (name->word && PySet_Add(words, key) < 0);
        Py_XDECREF(key);
        if (bad)
            goto fail;
    }
    return Py_BuildValue("(NN)", all, words);
fail:
    Py_XDECREF(all);
    Py_XDECREF(words);
    return NULL;
}

static PyMethodDef methods[] = {
    {"detect", detect, METH_O,
     "detect(message) -> level or None; see indexer.stages.levels.detect_level."},
    {"set_fallback", set_fallback, METH_O,
     "set_fallback(function): what detect() calls for a line whose head is not ASCII."},
    {"names", names, METH_NOARGS,
     "names() -> ({letters-only name: level}, {names that count in free text})."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "indexer.stages._levels",
    "The level a plain-text line announces, in C (indexer.stages.levels.detect_level).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__levels(void)
{
    int i;
    for (i = 0; i < 6; i++) {
        LEVEL_STR[i] = PyUnicode_InternFromString(LEVEL_NAMES[i]);
        if (LEVEL_STR[i] == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
