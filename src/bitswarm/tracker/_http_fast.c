/*
 * The HTTP tracker's two hottest checks, compiled: the request head of a one-shot
 * announce and the announce's query string. Each takes bytes and returns either the
 * result of the pure-Python function it stands for (bitswarm.net.tracker.fast_request,
 * bitswarm.tracker.server.parse_announce_query) or None for anything it is not sure about, so
 * the Python code stays the reference for every unusual request and for every error
 * message. tests/props/test_http_fast.py holds the two to the same answers.
 *
 * Every read is bounded by the length of the bytes object; nothing is written outside
 * the fixed buffers on this function's stack, whose sizes are checked before each write.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define INFO_HASH_BYTES 20
#define PEER_ID_BYTES 20
/* Longer queries or more parameters go to Python, which applies the real limits. */
#define MAX_FAST_QUERY_BYTES 2048
#define MAX_FAST_PARAMETERS 32
/* server.MAX_KEY_BYTES */
#define MAX_KEY_BYTES 64
/* Byte counts of up to 18 digits fit a signed 64-bit integer; longer go to Python. */
#define MAX_FAST_DIGITS 18

/* BEP 15 numbers, as bitswarm.tracker.swarm.Event. */
enum { EVENT_NONE = 0, EVENT_COMPLETED = 1, EVENT_STARTED = 2, EVENT_STOPPED = 3 };

enum {
    P_INFO_HASH, P_PEER_ID, P_PORT, P_EVENT, P_KEY, P_IP, P_NUMWANT, P_COMPACT,
    P_LEFT, P_UPLOADED, P_DOWNLOADED, P_COUNT
};

static int
parameter_index(const char *name, Py_ssize_t size)
{
#define IS(text) (size == (Py_ssize_t)sizeof(text) - 1 && memcmp(name, text, sizeof(text) - 1) == 0)
    switch (size) {
    case 2: return IS("ip") ? P_IP : -1;
    case 3: return IS("key") ? P_KEY : -1;
    case 4: return IS("port") ? P_PORT : IS("left") ? P_LEFT : -1;
    case 5: return IS("event") ? P_EVENT : -1;
    case 7: return IS("peer_id") ? P_PEER_ID : IS("numwant") ? P_NUMWANT : IS("compact") ? P_COMPACT : -1;
    case 8: return IS("uploaded") ? P_UPLOADED : -1;
    case 9: return IS("info_hash") ? P_INFO_HASH : -1;
    case 10: return IS("downloaded") ? P_DOWNLOADED : -1;
    default: return -1;
    }
#undef IS
}

static int
hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decode [p, end) into out, which holds capacity bytes, with '+' as a space
 * (server.unescape). The decoded length, or -1 for a bad escape or too long a value. */
static Py_ssize_t
unescape(const char *p, const char *end, char *out, Py_ssize_t capacity)
{
    Py_ssize_t size = 0;
    while (p < end) {
        char c = *p++;
        if (c == '%') {
            if (end - p < 2)
                return -1;
            int high = hex_digit((unsigned char)p[0]), low = hex_digit((unsigned char)p[1]);
            if (high < 0 || low < 0)
                return -1;
            c = (char)(high << 4 | low);
            p += 2;
        }
        else if (c == '+') {
            c = ' ';
        }
        if (size >= capacity)
            return -1;
        out[size++] = c;
    }
    return size;
}

/* 1 to MAX_FAST_DIGITS plain ASCII digits, or -1. */
static long long
plain_number(const char *p, const char *end)
{
    if (p == end || end - p > MAX_FAST_DIGITS)
        return -1;
    long long value = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
    }
    return value;
}

static int
event_number(const char *p, Py_ssize_t size)
{
#define IS(text) (size == (Py_ssize_t)sizeof(text) - 1 && memcmp(p, text, sizeof(text) - 1) == 0)
    if (size == 0 || IS("paused"))
        return EVENT_NONE; /* BEP 21's paused counts as an ordinary re-announce */
    if (IS("started"))
        return EVENT_STARTED;
    if (IS("completed"))
        return EVENT_COMPLETED;
    if (IS("stopped"))
        return EVENT_STOPPED;
    return -1;
#undef IS
}

/* plain_announce(query) -> (info_hash, peer_id, port, event, left, uploaded, downloaded,
 * numwant or -1, compact, None) or None. */
static PyObject *
plain_announce(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "plain_announce() takes bytes");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(arg);
    Py_ssize_t length = PyBytes_GET_SIZE(arg);
    if (length > MAX_FAST_QUERY_BYTES)
        Py_RETURN_NONE;
    const char *end = p + length;
    const char *value[P_COUNT] = {NULL};
    const char *value_end[P_COUNT] = {NULL};
    int pairs = 0;
    for (;;) {
        const char *pair_end = memchr(p, '&', (size_t)(end - p));
        if (pair_end == NULL)
            pair_end = end;
        if (++pairs > MAX_FAST_PARAMETERS)
            Py_RETURN_NONE;
        const char *equals = memchr(p, '=', (size_t)(pair_end - p));
        const char *name_end = equals != NULL ? equals : pair_end;
        if (memchr(p, '%', (size_t)(name_end - p)) != NULL || memchr(p, '+', (size_t)(name_end - p)) != NULL)
            Py_RETURN_NONE; /* an escaped name: Python decodes it */
        int index = parameter_index(p, name_end - p);
        if (index >= 0) {
            if (value[index] != NULL)
                Py_RETURN_NONE; /* repeated: Python says which */
            value[index] = equals != NULL ? equals + 1 : pair_end;
            value_end[index] = pair_end;
        }
        if (pair_end == end)
            break;
        p = pair_end + 1;
    }
    if (value[P_INFO_HASH] == NULL || value[P_PEER_ID] == NULL || value[P_IP] != NULL)
        Py_RETURN_NONE;
    char info_hash[INFO_HASH_BYTES], peer_id[PEER_ID_BYTES], key[MAX_KEY_BYTES];
    if (unescape(value[P_INFO_HASH], value_end[P_INFO_HASH], info_hash, INFO_HASH_BYTES) != INFO_HASH_BYTES)
        Py_RETURN_NONE;
    if (unescape(value[P_PEER_ID], value_end[P_PEER_ID], peer_id, PEER_ID_BYTES) != PEER_ID_BYTES)
        Py_RETURN_NONE;
    if (value[P_KEY] != NULL && unescape(value[P_KEY], value_end[P_KEY], key, MAX_KEY_BYTES) < 0)
        Py_RETURN_NONE;
    long long port = value[P_PORT] != NULL ? plain_number(value[P_PORT], value_end[P_PORT]) : -1;
    if (port < 1 || port > 65535)
        Py_RETURN_NONE;
    int event = EVENT_NONE;
    if (value[P_EVENT] != NULL && (event = event_number(value[P_EVENT], value_end[P_EVENT] - value[P_EVENT])) < 0)
        Py_RETURN_NONE;
    long long numwant = -1;
    if (value[P_NUMWANT] != NULL && (numwant = plain_number(value[P_NUMWANT], value_end[P_NUMWANT])) < 0)
        Py_RETURN_NONE;
    long long counts[3];
    static const int count_parameters[3] = {P_LEFT, P_UPLOADED, P_DOWNLOADED};
    for (int at = 0; at < 3; at++) {
        int index = count_parameters[at];
        if (value[index] == NULL || (counts[at] = plain_number(value[index], value_end[index])) < 0)
            Py_RETURN_NONE;
    }
    int compact = 1;
    if (value[P_COMPACT] != NULL) {
        Py_ssize_t size = value_end[P_COMPACT] - value[P_COMPACT];
        const char *text = value[P_COMPACT];
        compact = !((size == 1 && text[0] == '0') || (size == 3 && memcmp(text, "%30", 3) == 0));
    }
    /* The last item, the ip parameter, is None: a request with one is left to Python. */
    return Py_BuildValue(
        "(y#y#iiLLLLNO)", info_hash, (Py_ssize_t)INFO_HASH_BYTES, peer_id, (Py_ssize_t)PEER_ID_BYTES, (int)port,
        event, counts[0], counts[1], counts[2], numwant, PyBool_FromLong(compact), Py_None);
}

/* RFC 9110 tchar. */
static int
is_token_char(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
same_lowercase(const unsigned char *p, Py_ssize_t size, const char *lowercase)
{
    if ((size_t)size != strlen(lowercase))
        return 0;
    for (Py_ssize_t at = 0; at < size; at++) {
        unsigned char c = p[at];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)lowercase[at])
            return 0;
    }
    return 1;
}

static int
is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* request_head(data) -> (url, authorization or None) or None. */
static PyObject *
request_head(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "request_head() takes bytes");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (n < 4 || memcmp(s + n - 4, "\r\n\r\n", 4) != 0)
        Py_RETURN_NONE;
    /* GET (/(?:announce|scrape)[\x21-\x7e]*) HTTP/1\.([01])\r\n */
    if (n < 5 || memcmp(s, "GET /", 5) != 0)
        Py_RETURN_NONE;
    Py_ssize_t url_start = 4;
    if (!((n - 5 >= 8 && memcmp(s + 5, "announce", 8) == 0) || (n - 5 >= 6 && memcmp(s + 5, "scrape", 6) == 0)))
        Py_RETURN_NONE;
    Py_ssize_t url_end = url_start;
    while (url_end < n && s[url_end] >= 0x21 && s[url_end] <= 0x7e)
        url_end++;
    if (n - url_end < 11 || memcmp(s + url_end, " HTTP/1.", 8) != 0 || (s[url_end + 8] != '0' && s[url_end + 8] != '1') ||
        memcmp(s + url_end + 9, "\r\n", 2) != 0)
        Py_RETURN_NONE;
    int keep_alive = s[url_end + 8] == '1';
    const unsigned char *authorization = NULL;
    Py_ssize_t authorization_size = 0;
    /* (?:token:[\t\x20-\x7e]*\r\n)*\r\n up to the end of the data */
    Py_ssize_t at = url_end + 11;
    while (at != n - 2) {
        Py_ssize_t name_start = at;
        while (at < n && is_token_char(s[at]))
            at++;
        if (at == name_start || at >= n || s[at] != ':')
            Py_RETURN_NONE;
        Py_ssize_t name_size = at - name_start;
        Py_ssize_t value_start = ++at;
        while (at < n && (s[at] == '\t' || (s[at] >= 0x20 && s[at] <= 0x7e)))
            at++;
        if (n - at < 2 || s[at] != '\r' || s[at + 1] != '\n')
            Py_RETURN_NONE;
        Py_ssize_t value_end = at;
        at += 2;
        if (at > n - 2)
            Py_RETURN_NONE;
        const unsigned char *name = s + name_start;
        if (same_lowercase(name, name_size, "connection")) {
            int close = 0, keep = 0, upgrade = 0;
            Py_ssize_t token_start = value_start;
            while (token_start <= value_end) {
                Py_ssize_t token_end = token_start;
                while (token_end < value_end && s[token_end] != ',')
                    token_end++;
                Py_ssize_t first = token_start, last = token_end;
                while (first < last && is_blank(s[first]))
                    first++;
                while (last > first && is_blank(s[last - 1]))
                    last--;
                close |= same_lowercase(s + first, last - first, "close");
                keep |= same_lowercase(s + first, last - first, "keep-alive");
                upgrade |= same_lowercase(s + first, last - first, "upgrade");
                token_start = token_end + 1;
            }
            if (close)
                keep_alive = 0;
            else if (keep)
                keep_alive = 1;
            if (upgrade)
                Py_RETURN_NONE;
        }
        else if (same_lowercase(name, name_size, "content-length") ||
                 same_lowercase(name, name_size, "transfer-encoding") || same_lowercase(name, name_size, "upgrade") ||
                 same_lowercase(name, name_size, "expect")) {
            Py_RETURN_NONE;
        }
        else if (same_lowercase(name, name_size, "authorization")) {
            Py_ssize_t first = value_start, last = value_end;
            while (first < last && is_blank(s[first]))
                first++;
            while (last > first && is_blank(s[last - 1]))
                last--;
            authorization = s + first;
            authorization_size = last - first;
        }
    }
    if (keep_alive)
        Py_RETURN_NONE;
    if (authorization == NULL)
        return Py_BuildValue("(y#O)", (const char *)s + url_start, url_end - url_start, Py_None);
    return Py_BuildValue(
        "(y#y#)", (const char *)s + url_start, url_end - url_start, (const char *)authorization, authorization_size);
}

static PyMethodDef methods[] = {
    {"plain_announce", plain_announce, METH_O, "An announce's query string when it is plain, else None."},
    {"request_head", request_head, METH_O, "(url, authorization) of a plain one-shot GET head, else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bitswarm.tracker._http_fast", "Compiled fast paths of the HTTP tracker.", -1, methods,
};

PyMODINIT_FUNC
PyInit__http_fast(void)
{
    return PyModule_Create(&module);
}
