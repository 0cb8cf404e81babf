/*
 * LD_PRELOAD shim for wrk (scenario 15, full TLS handshakes): before each
 * new handshake, drop the session the connection's SSL object kept from its
 * previous connection, so that wrk never offers it for resumption.
 *
 * wrk closes a connection with SSL_shutdown + SSL_clear and reuses the SSL
 * object, which keeps the session: with `Connection: close` every later
 * handshake is a resumption wherever the server allows one (shoal has no
 * setting to refuse it). bench/run builds this with cc and checks, against
 * nginx with resumption on, that no connection of the load resumes.
 *
 * No OpenSSL headers or link: the functions are looked up in the libssl
 * wrk has loaded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct ssl_st SSL;

int SSL_connect(SSL *ssl)
{
    static int (*real_connect)(SSL *);
    static int (*in_before)(const SSL *);
    static int (*set_session)(SSL *, void *);
    if (!real_connect) {
        real_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
        in_before = (int (*)(const SSL *))dlsym(RTLD_NEXT, "SSL_in_before");
        set_session = (int (*)(SSL *, void *))dlsym(RTLD_NEXT, "SSL_set_session");
    }
    /* Only before the handshake starts: SSL_connect is called again and
       again on a non-blocking socket until the handshake is done. */
    if (in_before && set_session && in_before(ssl))
        set_session(ssl, NULL);
    return real_connect(ssl);
}
