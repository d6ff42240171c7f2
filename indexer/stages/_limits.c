/* indexer.stages.limits.needs_no_capping_py in C: the tests hold the two equal on arbitrary
 * dicts.
 *
 * needs_no_capping(fields, source_chars, max_fields, max_value_bytes) -> bool
 *     Asked of every parsed JSON or logfmt line. The twin spends about 1 us a line on a set
 *     of value types and a join of the keys; here it is one pass over the dict.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *needs_no_capping(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    Py_ssize_t source_chars, max_fields, max_value_bytes;
    if (nargs != 4 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "needs_no_capping(fields: dict, source_chars: int, max_fields: int, "
                        "max_value_bytes: int)");
        return NULL;
    }
    source_chars = PyLong_AsSsize_t(args[1]);
    max_fields = PyLong_AsSsize_t(args[2]);
    max_value_bytes = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *fields = args[0];
    /* source_chars * 4 > max_value_bytes, where the product may not fit */
    if (source_chars > PY_SSIZE_T_MAX / 4)
        Py_RETURN_FALSE;
    if (source_chars >= PY_SSIZE_T_MIN / 4 && source_chars * 4 > max_value_bytes)
        Py_RETURN_FALSE;
    if (PyDict_GET_SIZE(fields) > max_fields)
        Py_RETURN_FALSE;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(fields, &pos, &key, &value)) {
        PyTypeObject *type = Py_TYPE(value);
        if (type != &PyUnicode_Type && type != &PyLong_Type && type != &PyFloat_Type
            && type != &PyBool_Type && value != Py_None)
            Py_RETURN_FALSE;
        if (!PyUnicode_Check(key))  /* the walk turns it into a str */
            Py_RETURN_FALSE;
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        if (len == 0)
            Py_RETURN_FALSE;
        Py_ssize_t dot = PyUnicode_FindChar(key, '.', 0, len, 1);
        if (dot == -2)
            return NULL;
        if (dot >= 0)
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"needs_no_capping", (PyCFunction)(void (*)(void))needs_no_capping, METH_FASTCALL,
     "See indexer.stages.limits.needs_no_capping_py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "indexer.stages._limits",
    "indexer.stages.limits.needs_no_capping_py in C.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__limits(void) { return PyModule_Create(&module); }
