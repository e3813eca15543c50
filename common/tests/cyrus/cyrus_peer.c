/*
 * A Cyrus SASL (libsasl2) peer for interoperability tests, set up the way
 * Mesos sets up its CRAM-MD5 authenticator and authenticatee: service
 * "mesos", secrets served by an in-memory auxprop plugin, the mechanism
 * list forced to one mechanism, user names passed through unchanged.
 *
 * It speaks a line protocol on stdin/stdout, payloads in lowercase hex
 * (an empty payload is an empty hex string):
 *
 *   server MECH HOSTNAME [PRINCIPAL SECRET]...
 *     reads   "START <hex>"           (the client's start data)
 *     prints  "CHALLENGE <hex>"       then reads "STEP <hex>", repeatedly
 *     prints  "OK <user> <hex>"       (hex: data sent with success, if any)
 *          or "FAIL <code> <detail>"  (bad user or password)
 *          or "ERROR <code> <detail>" (anything else)
 *
 *   client MECH PRINCIPAL SECRET
 *     prints  "START <code> <hex>"
 *     reads   "CHALLENGE <hex>", prints "STEP <code> <hex>", until EOF
 *     (a code is the libsasl2 result: 0 SASL_OK, 1 SASL_CONTINUE, <0 errors)
 *
 * Test fixture only: secrets come from the command line.
 */
#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_NAME "in-memory-auxprop"
#define LINE_MAX_LEN 65536
/* libsasl2 callbacks are stored as int (*)(void); the detour through
 * void (*)(void) tells the compiler the cast is deliberate. */
#define CALLBACK(f) ((int (*)(void))(void (*)(void))(f))

static const char *mech = "CRAM-MD5";
static int n_credentials = 0;
static char **credentials = NULL; /* principal, secret, principal, ... */

static void fail(const char *what)
{
    fprintf(stderr, "cyrus_peer: %s\n", what);
    exit(2);
}

static char *hex_encode(const char *data, unsigned len)
{
    static const char digits[] = "0123456789abcdef";
    char *out = malloc(2 * (size_t)len + 1);
    unsigned i;
    if (out == NULL) fail("out of memory");
    for (i = 0; i < len; i++) {
        out[2 * i] = digits[((unsigned char)data[i]) >> 4];
        out[2 * i + 1] = digits[((unsigned char)data[i]) & 0x0f];
    }
    out[2 * len] = '\0';
    return out;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex in place; returns the length, exits on bad input. */
static unsigned hex_decode(char *text)
{
    size_t len = strlen(text), i;
    if (len % 2 != 0) fail("odd hex length");
    for (i = 0; i < len / 2; i++) {
        int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) fail("bad hex digit");
        text[i] = (char)(hi * 16 + lo);
    }
    text[len / 2] = '\0';
    return (unsigned)(len / 2);
}

/* Reads "<word> <hex>"; returns the payload (decoded in place) or NULL at EOF. */
static char *read_payload(char *line, const char *word, unsigned *len)
{
    size_t n, wl = strlen(word);
    if (fgets(line, LINE_MAX_LEN, stdin) == NULL) return NULL;
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    if (strncmp(line, word, wl) != 0 || (line[wl] != ' ' && line[wl] != '\0')) {
        fprintf(stderr, "cyrus_peer: expected '%s', got '%s'\n", word, line);
        exit(2);
    }
    if (line[wl] == '\0') {
        *len = 0;
        return line + wl;
    }
    *len = hex_decode(line + wl + 1);
    return line + wl + 1;
}

static int log_cb(void *context, int level, const char *message)
{
    (void)context;
    fprintf(stderr, "cyrus_peer: libsasl2 [%d] %s\n", level, message);
    return SASL_OK;
}

static int getopt_cb(void *context, const char *plugin, const char *option,
                     const char **result, unsigned *len)
{
    (void)context;
    (void)plugin;
    if (strcmp(option, "mech_list") == 0) {
        *result = mech;
    } else if (strcmp(option, "auxprop_plugin") == 0) {
        *result = PLUGIN_NAME;
    } else if (strcmp(option, "pwcheck_method") == 0) {
        *result = "auxprop";
    } else if (strcmp(option, "log_level") == 0) {
        *result = "3";
    } else {
        return SASL_FAIL;
    }
    if (len != NULL) *len = (unsigned)strlen(*result);
    return SASL_OK;
}

/* Like Mesos: the user name is used exactly as sent (no realm appended). */
static int canon_cb(sasl_conn_t *conn, void *context, const char *in, unsigned inlen,
                    unsigned flags, const char *user_realm, char *out, unsigned out_max,
                    unsigned *out_len)
{
    (void)conn;
    (void)context;
    (void)flags;
    (void)user_realm;
    if (inlen >= out_max) return SASL_BUFOVER;
    memcpy(out, in, inlen);
    out[inlen] = '\0';
    *out_len = inlen;
    return SASL_OK;
}

static const char *secret_of(const char *user, unsigned ulen)
{
    int i;
    for (i = 0; i + 1 < n_credentials; i += 2) {
        if (strlen(credentials[i]) == ulen && memcmp(credentials[i], user, ulen) == 0) {
            return credentials[i + 1];
        }
    }
    return NULL;
}

/* The in-memory auxprop lookup, after Mesos's InMemoryAuxiliaryPropertyPlugin. */
static int aux_lookup(void *glob_context, sasl_server_params_t *sparams, unsigned flags,
                      const char *user, unsigned ulen)
{
    const struct propval *properties = sparams->utils->prop_get(sparams->propctx);
    const struct propval *property;
    (void)glob_context;
    if (properties == NULL) return SASL_OK;
    for (property = properties; property->name != NULL; property++) {
        const char *name = property->name;
        const char *secret;
        if (flags & SASL_AUXPROP_AUTHZID) {
            if (name[0] == '*') continue;
        } else {
            if (name[0] != '*') continue;
            name++;
        }
        if (strcmp(name, SASL_AUX_PASSWORD_PROP) != 0) continue;
        if (property->values != NULL) {
            if (!(flags & (SASL_AUXPROP_OVERRIDE | SASL_AUXPROP_VERIFY_AGAINST_HASH))) continue;
            sparams->utils->prop_erase(sparams->propctx, property->name);
        }
        secret = secret_of(user, ulen);
        if (secret != NULL) {
            sparams->utils->prop_set(sparams->propctx, property->name, secret, -1);
        }
    }
    return SASL_OK;
}

static sasl_auxprop_plug_t plugin;

static int aux_init(const sasl_utils_t *utils, int max_version, int *out_version,
                    sasl_auxprop_plug_t **plug, const char *plugname)
{
    (void)utils;
    (void)plugname;
    if (out_version == NULL || plug == NULL) return SASL_BADPARAM;
    if (max_version < SASL_AUXPROP_PLUG_VERSION) return SASL_BADVERS;
    *out_version = SASL_AUXPROP_PLUG_VERSION;
    memset(&plugin, 0, sizeof plugin);
    plugin.auxprop_lookup = aux_lookup;
    plugin.name = PLUGIN_NAME;
    *plug = &plugin;
    return SASL_OK;
}

static int run_server(const char *hostname)
{
    static sasl_callback_t callbacks[] = {
        {SASL_CB_GETOPT, CALLBACK(getopt_cb), NULL},
        {SASL_CB_LOG, CALLBACK(log_cb), NULL},
        {SASL_CB_CANON_USER, CALLBACK(canon_cb), NULL},
        {SASL_CB_LIST_END, NULL, NULL},
    };
    static char line[LINE_MAX_LEN];
    sasl_conn_t *conn = NULL;
    const char *out = NULL;
    unsigned outlen = 0, inlen = 0;
    char *in;
    int rc;

    rc = sasl_server_init(callbacks, "mesos");
    if (rc != SASL_OK) {
        printf("ERROR %d sasl_server_init: %s\n", rc, sasl_errstring(rc, NULL, NULL));
        return 1;
    }
    rc = sasl_auxprop_add_plugin(PLUGIN_NAME, aux_init);
    if (rc != SASL_OK) {
        printf("ERROR %d sasl_auxprop_add_plugin: %s\n", rc, sasl_errstring(rc, NULL, NULL));
        return 1;
    }
    rc = sasl_server_new("mesos", hostname, NULL, NULL, NULL, callbacks, 0, &conn);
    if (rc != SASL_OK) {
        printf("ERROR %d sasl_server_new: %s\n", rc, sasl_errstring(rc, NULL, NULL));
        return 1;
    }
    in = read_payload(line, "START", &inlen);
    if (in == NULL) fail("no START line");
    rc = sasl_server_start(conn, mech, inlen > 0 ? in : NULL, inlen, &out, &outlen);
    while (rc == SASL_CONTINUE) {
        char *hex = hex_encode(out, outlen);
        printf("CHALLENGE %s\n", hex);
        fflush(stdout);
        free(hex);
        in = read_payload(line, "STEP", &inlen);
        if (in == NULL) fail("no STEP line");
        rc = sasl_server_step(conn, in, inlen, &out, &outlen);
    }
    if (rc == SASL_OK) {
        const void *user = NULL;
        char *hex = hex_encode(out != NULL ? out : "", out != NULL ? outlen : 0);
        sasl_getprop(conn, SASL_USERNAME, &user);
        printf("OK %s %s\n", user != NULL ? (const char *)user : "", hex);
        free(hex);
    } else if (rc == SASL_BADAUTH || rc == SASL_NOUSER || rc == SASL_NOAUTHZ) {
        printf("FAIL %d %s\n", rc, sasl_errdetail(conn));
    } else {
        printf("ERROR %d %s\n", rc, sasl_errdetail(conn));
    }
    fflush(stdout);
    sasl_dispose(&conn);
    sasl_done();
    return 0;
}

static const char *client_principal;
static const char *client_secret;

static int simple_cb(void *context, int id, const char **result, unsigned *len)
{
    (void)context;
    if (id != SASL_CB_USER && id != SASL_CB_AUTHNAME) return SASL_BADPARAM;
    *result = client_principal;
    if (len != NULL) *len = (unsigned)strlen(client_principal);
    return SASL_OK;
}

static int pass_cb(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
    static sasl_secret_t *secret = NULL;
    size_t len = strlen(client_secret);
    (void)conn;
    (void)context;
    if (id != SASL_CB_PASS || psecret == NULL) return SASL_BADPARAM;
    if (secret == NULL) {
        secret = malloc(sizeof(sasl_secret_t) + len + 1);
        if (secret == NULL) return SASL_NOMEM;
        secret->len = len;
        memcpy(secret->data, client_secret, len + 1);
    }
    *psecret = secret;
    return SASL_OK;
}

static int run_client(void)
{
    static sasl_callback_t callbacks[] = {
        {SASL_CB_GETREALM, NULL, NULL},
        {SASL_CB_USER, CALLBACK(simple_cb), NULL},
        {SASL_CB_AUTHNAME, CALLBACK(simple_cb), NULL},
        {SASL_CB_PASS, CALLBACK(pass_cb), NULL},
        {SASL_CB_LOG, CALLBACK(log_cb), NULL},
        {SASL_CB_LIST_END, NULL, NULL},
    };
    static char line[LINE_MAX_LEN];
    sasl_conn_t *conn = NULL;
    const char *out = NULL, *chosen = NULL;
    unsigned outlen = 0, inlen = 0;
    char *in, *hex;
    int rc;

    rc = sasl_client_init(NULL);
    if (rc != SASL_OK) {
        printf("START %d \n", rc);
        return 1;
    }
    rc = sasl_client_new("mesos", "localhost", NULL, NULL, callbacks, 0, &conn);
    if (rc != SASL_OK) {
        printf("START %d \n", rc);
        return 1;
    }
    rc = sasl_client_start(conn, mech, NULL, &out, &outlen, &chosen);
    hex = hex_encode(out != NULL ? out : "", out != NULL ? outlen : 0);
    printf("START %d %s\n", rc, hex);
    fflush(stdout);
    free(hex);
    if (rc != SASL_OK && rc != SASL_CONTINUE) {
        fprintf(stderr, "cyrus_peer: sasl_client_start: %s\n", sasl_errdetail(conn));
        return 1;
    }
    while ((in = read_payload(line, "CHALLENGE", &inlen)) != NULL) {
        out = NULL;
        outlen = 0;
        rc = sasl_client_step(conn, in, inlen, NULL, &out, &outlen);
        hex = hex_encode(out != NULL ? out : "", out != NULL ? outlen : 0);
        printf("STEP %d %s\n", rc, hex);
        fflush(stdout);
        free(hex);
        if (rc != SASL_OK && rc != SASL_CONTINUE) {
            fprintf(stderr, "cyrus_peer: sasl_client_step: %s\n", sasl_errdetail(conn));
        }
    }
    sasl_dispose(&conn);
    sasl_done();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "server") == 0 && (argc - 4) % 2 == 0) {
        mech = argv[2];
        n_credentials = argc - 4;
        credentials = argv + 4;
        return run_server(argv[3]);
    }
    if (argc == 5 && strcmp(argv[1], "client") == 0) {
        mech = argv[2];
        client_principal = argv[3];
        client_secret = argv[4];
        return run_client();
    }
    fprintf(stderr,
            "usage: cyrus_peer server MECH HOSTNAME [PRINCIPAL SECRET]...\n"
            "       cyrus_peer client MECH PRINCIPAL SECRET\n");
    return 2;
}
