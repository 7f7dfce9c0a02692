/* MySQL's binary JSON printed as MySQL prints it: the compiled twin of jsonbinary.py.
 *
 * json_text(double_text, opaque_text, data) -> str gives exactly what
 * jsonbinary.json_text_python(data) gives, and raises ValueError where it does; the
 * format and the printing rules are described in jsonbinary.py's docstring. Doubles and
 * opaque values (DECIMAL, temporal, base64) are rare and subtle, so they are printed by
 * the two Python callables passed in; containers, strings, integers and literals, the
 * bulk of an app's documents, are printed here into one UTF-8 buffer.
 *
 * Every read is bounds-checked against the enclosing value's end, as in the Python code,
 * and strings are checked to be UTF-8 by the rules of Python's strict codec (no overlong
 * forms, no surrogates, nothing past U+10FFFF), so both implementations accept and
 * refuse the same inputs (tests/test_jsonbinary.py compares them on generated and on
 * corrupted documents).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 100 /* MySQL's JSON_DOCUMENT_MAX_DEPTH */

enum {
    SMALL_OBJECT = 0x0, LARGE_OBJECT = 0x1, SMALL_ARRAY = 0x2, LARGE_ARRAY = 0x3,
    LITERAL = 0x4, INT16 = 0x5, UINT16 = 0x6, INT32 = 0x7, UINT32 = 0x8,
    INT64 = 0x9, UINT64 = 0xA, DOUBLE = 0xB, STRING = 0xC, OPAQUE = 0xF
};

typedef struct {
    char *data;
    size_t len, cap;
} Out;

typedef struct {
    const unsigned char *buf;
    PyObject *double_text, *opaque_text;
    Out out;
} Ctx;

static int fail(const char *message) {
    PyErr_Format(PyExc_ValueError, "binary JSON: %s", message);
    return -1;
}

static int reserve(Out *out, size_t more) {
    if (out->len + more <= out->cap)
        return 0;
    size_t cap = out->cap ? out->cap : 256;
    while (cap < out->len + more)
        cap *= 2;
    char *data = PyMem_Realloc(out->data, cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = data;
    out->cap = cap;
    return 0;
}

static int put(Out *out, const char *s, size_t n) {
    if (reserve(out, n) < 0)
        return -1;
    memcpy(out->data + out->len, s, n);
    out->len += n;
    return 0;
}

static int put_str(Out *out, PyObject *text) { /* append a str returned by a callable */
    if (!PyUnicode_Check(text))
        return fail("a printing helper returned something other than text");
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    return s ? put(out, s, (size_t)n) : -1;
}

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Length of the UTF-8 sequence at s (n bytes left), or 0 when Python's strict codec
 * would refuse it. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0)
            return 0; /* a surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && s[1] >= 0x90)
            return 0; /* past U+10FFFF */
        return 4;
    }
    return 0;
}

/* A string quoted and escaped as MySQL does: '"' and '\\', \b \t \n \f \r, other bytes
 * below 0x20 as \u00xx (none of these bytes occurs inside a multi-byte sequence). */
static int put_quoted(Out *out, const unsigned char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (reserve(out, 2 + 6 * n) < 0)
        return -1;
    char *w = out->data + out->len;
    *w++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_sequence(s + i, n - i);
            if (!k)
                return fail("string is not valid UTF-8");
            memcpy(w, s + i, k);
            w += k;
            i += k;
            continue;
        }
        i++;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *w++ = (char)c;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case 0x08: *w++ = 'b'; break;
        case 0x09: *w++ = 't'; break;
        case 0x0A: *w++ = 'n'; break;
        case 0x0C: *w++ = 'f'; break;
        case 0x0D: *w++ = 'r'; break;
        default:
            *w++ = 'u'; *w++ = '0'; *w++ = '0';
            *w++ = hex[c >> 4]; *w++ = hex[c & 15];
        }
    }
    *w++ = '"';
    out->len = (size_t)(w - out->data);
    return 0;
}

static int put_int(Out *out, long long v) {
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", v);
    return put(out, text, (size_t)n);
}

static int put_uint(Out *out, unsigned long long v) {
    char text[24];
    int n = snprintf(text, sizeof text, "%llu", v);
    return put(out, text, (size_t)n);
}

/* MySQL's variable-length length: 7 bits a byte, low first, at most 5 bytes. */
static int read_length(const unsigned char *buf, size_t pos, size_t end, uint64_t *n,
                       size_t *next) {
    uint64_t value = 0;
    unsigned shift = 0;
    size_t stop = end < pos + 5 ? end : pos + 5;
    for (size_t i = pos; i < stop; i++) {
        unsigned char b = buf[i];
        value |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            if (value > 0xFFFFFFFFu)
                break;
            *n = value;
            *next = i + 1;
            return 0;
        }
        shift += 7;
    }
    return fail("truncated or invalid length");
}

static int put_literal(Out *out, unsigned v) {
    switch (v) {
    case 0: return put(out, "null", 4);
    case 1: return put(out, "true", 4);
    case 2: return put(out, "false", 5);
    default: return -2; /* the caller names the case */
    }
}

static int value(Ctx *ctx, unsigned t, size_t pos, size_t end, int depth);

static int scalar(Ctx *ctx, unsigned t, size_t pos, size_t end) {
    const unsigned char *p = ctx->buf + pos;
    size_t size = t == INT16 || t == UINT16 ? 2 : t == INT32 || t == UINT32 ? 4 : 8;
    if (t == LITERAL) {
        int r = pos < end ? put_literal(&ctx->out, p[0]) : -2;
        return r == -2 ? fail("truncated or unknown literal") : r;
    }
    if (pos + size > end)
        return fail(t == DOUBLE ? "truncated double" : "truncated integer");
    switch (t) {
    case INT16: return put_int(&ctx->out, (int16_t)le16(p));
    case UINT16: return put_int(&ctx->out, le16(p));
    case INT32: return put_int(&ctx->out, (int32_t)le32(p));
    case UINT32: return put_int(&ctx->out, le32(p));
    case INT64: return put_int(&ctx->out, (long long)(int64_t)le64(p));
    case UINT64: return put_uint(&ctx->out, le64(p));
    default: break;
    }
    double d = PyFloat_Unpack8((const char *)p, 1);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    PyObject *number = PyFloat_FromDouble(d);
    if (!number)
        return -1;
    PyObject *text = PyObject_CallOneArg(ctx->double_text, number);
    Py_DECREF(number);
    if (!text)
        return -1;
    int r = put_str(&ctx->out, text);
    Py_DECREF(text);
    return r;
}

static int opaque(Ctx *ctx, size_t pos, size_t end) {
    if (pos >= end)
        return fail("truncated opaque value");
    unsigned field_type = ctx->buf[pos];
    uint64_t n;
    if (read_length(ctx->buf, pos + 1, end, &n, &pos) < 0)
        return -1;
    if (pos + n > end)
        return fail("opaque value runs past the end of the value");
    PyObject *text = PyObject_CallFunction(ctx->opaque_text, "Iy#", field_type,
                                           (const char *)ctx->buf + pos, (Py_ssize_t)n);
    if (!text)
        return -1;
    int r = put_str(&ctx->out, text);
    Py_DECREF(text);
    return r;
}

static int inline_value(Out *out, unsigned vt, uint32_t v) {
    switch (vt) {
    case LITERAL: {
        int r = put_literal(out, v & 0xFF);
        return r == -2 ? fail("unknown literal") : r;
    }
    case INT16: return put_int(out, (int16_t)(v & 0xFFFF));
    case UINT16: return put_int(out, v & 0xFFFF);
    case INT32: return put_int(out, (int32_t)v);
    default: return put_int(out, v); /* UINT32 */
    }
}

static int is_inline(unsigned vt, int large) {
    return vt == LITERAL || vt == INT16 || vt == UINT16 ||
           (large && (vt == INT32 || vt == UINT32));
}

/* An object or array at pos: header and every key checked before anything is printed,
 * as jsonbinary.py does; offsets are relative to pos. */
static int container(Ctx *ctx, unsigned t, size_t pos, size_t end, int depth) {
    const unsigned char *buf = ctx->buf;
    if (++depth > MAX_DEPTH)
        return fail("nested deeper than 100 levels");
    int large = t == LARGE_OBJECT || t == LARGE_ARRAY;
    int is_object = t == SMALL_OBJECT || t == LARGE_OBJECT;
    size_t header = large ? 8 : 4, key_size = large ? 6 : 4, entry_size = large ? 5 : 3;
    if (pos + header > end)
        return fail("truncated object or array header");
    uint64_t count = large ? le32(buf + pos) : le16(buf + pos);
    uint64_t size = large ? le32(buf + pos + 4) : le16(buf + pos + 2);
    if (size > end - pos)
        return fail("object or array is larger than the data holding it");
    uint64_t keys_at = pos + header;
    uint64_t values_at = keys_at + (is_object ? count * key_size : 0);
    uint64_t first_free = values_at + count * entry_size - pos; /* relative */
    if (first_free > size)
        return fail("object or array header is larger than the value");
    for (uint64_t i = 0; is_object && i < count; i++) { /* every key checked first */
        const unsigned char *k = buf + keys_at + i * key_size;
        uint64_t offset = large ? le32(k) : le16(k), length = le16(k + (large ? 4 : 2));
        if (offset < first_free || offset + length > size)
            return fail("object key outside the object");
        size_t mark = ctx->out.len;
        if (put_quoted(&ctx->out, buf + pos + offset, length) < 0)
            return -1;
        ctx->out.len = mark; /* checked only: printed again below, in value order */
    }
    if (put(&ctx->out, is_object ? "{" : "[", 1) < 0)
        return -1;
    uint64_t after = values_at - pos;
    for (uint64_t i = 0; i < count; i++) {
        const unsigned char *e = buf + values_at + i * entry_size;
        unsigned vt = e[0];
        uint32_t v = large ? le32(e + 1) : le16(e + 1);
        after += entry_size;
        if (i && put(&ctx->out, ", ", 2) < 0)
            return -1;
        if (is_object) {
            const unsigned char *k = buf + keys_at + i * key_size;
            uint64_t offset = large ? le32(k) : le16(k), length = le16(k + (large ? 4 : 2));
            if (put_quoted(&ctx->out, buf + pos + offset, length) < 0 ||
                put(&ctx->out, ": ", 2) < 0)
                return -1;
        }
        if (is_inline(vt, large)) {
            if (inline_value(&ctx->out, vt, v) < 0)
                return -1;
            continue;
        }
        if (v < after || v > size)
            return fail("value offset outside the object or array");
        if (value(ctx, vt, pos + v, pos + size, depth) < 0)
            return -1;
    }
    return put(&ctx->out, is_object ? "}" : "]", 1);
}

static int value(Ctx *ctx, unsigned t, size_t pos, size_t end, int depth) {
    switch (t) {
    case SMALL_OBJECT: case LARGE_OBJECT: case SMALL_ARRAY: case LARGE_ARRAY:
        return container(ctx, t, pos, end, depth);
    case STRING: {
        uint64_t n;
        if (read_length(ctx->buf, pos, end, &n, &pos) < 0)
            return -1;
        if (pos + n > end)
            return fail("string runs past the end of the value");
        return put_quoted(&ctx->out, ctx->buf + pos, n);
    }
    case LITERAL: case INT16: case UINT16: case INT32: case UINT32: case INT64: case UINT64:
    case DOUBLE:
        return scalar(ctx, t, pos, end);
    case OPAQUE:
        return opaque(ctx, pos, end);
    default:
        PyErr_Format(PyExc_ValueError, "binary JSON: unknown value type 0x%02x", t);
        return -1;
    }
}

static PyObject *json_text(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "json_text(double_text, opaque_text, data)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len == 0) {
        PyBuffer_Release(&view);
        return PyUnicode_FromString("null"); /* MySQL's reading of an empty value */
    }
    Ctx ctx = {view.buf, args[0], args[1], {NULL, 0, 0}};
    int r = value(&ctx, ctx.buf[0], 1, (size_t)view.len, 0);
    PyBuffer_Release(&view);
    PyObject *text = NULL;
    if (r == 0)
        text = PyUnicode_DecodeUTF8(ctx.out.data ? ctx.out.data : "", (Py_ssize_t)ctx.out.len,
                                    "strict");
    PyMem_Free(ctx.out.data);
    return text;
}

static PyMethodDef methods[] = {
    {"json_text", (PyCFunction)(void (*)(void))json_text, METH_FASTCALL,
     "json_text(double_text, opaque_text, data) -> str: MySQL's binary JSON value as the "
     "text MySQL prints for it (doubles and opaque values printed by the two callables)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jsonbinary", NULL, 0, methods};

PyMODINIT_FUNC PyInit__jsonbinary(void) { return PyModule_Create(&module); }
