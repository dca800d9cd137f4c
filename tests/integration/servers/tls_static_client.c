/* A tiny HTTPS/1.1 client for the aion TLS tests, meant to be linked
 * statically with OpenSSL (gcc -static ... -lssl -lcrypto -lpthread -ldl):
 * the binary defines SSL_read/SSL_write itself.
 *
 *   tls_static_client PORT PATH...
 *
 * Waits for a line on stdin (so that the agent can be ready first), then
 * connects to 127.0.0.1:PORT, does a TLS handshake (no verification) and
 * sends one GET per PATH on that one connection (keep-alive), reading each
 * response (Content-Length framed). Prints "STATUS BODYLEN" per response,
 * then "DONE <n>". Exit 0 on success. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[1 << 16];
static size_t have;

static int fill(SSL *ssl)
{
    if (have >= sizeof(buf))
        return -1;
    int n = SSL_read(ssl, buf + have, (int)(sizeof(buf) - have));
    if (n <= 0)
        return -1;
    have += (size_t)n;
    return n;
}

static void drop(size_t n)
{
    memmove(buf, buf + n, have - n);
    have -= n;
}

static int response(SSL *ssl, int *status, long *len)
{
    char *end;
    for (;;) {
        end = memmem(buf, have, "\r\n\r\n", 4);
        if (end)
            break;
        if (fill(ssl) < 0)
            return -1;
    }
    size_t head = (size_t)(end - buf) + 4;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1)
        return -1;
    long clen = 0;
    for (char *l = buf; l < end;) {
        char *nl = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        if (!nl)
            break;
        if (nl - l > 15 && strncasecmp(l, "Content-Length:", 15) == 0)
            clen = strtol(l + 15, NULL, 10);
        l = nl + 2;
    }
    drop(head);
    long left = clen;
    while (left > 0) {
        if (have == 0 && fill(ssl) < 0)
            return -1;
        size_t take = (size_t)left < have ? (size_t)left : have;
        drop(take);
        left -= (long)take;
    }
    *len = clen;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT PATH...\n", argv[0]);
        return 2;
    }
    char gate[64];
    if (!fgets(gate, sizeof(gate), stdin))
        return 3;
    int port = atoi(argv[1]);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ERR_print_errors_fp(stderr);
        return 4;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        return 5;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 6;
    }
    int n = 0;
    for (int i = 2; i < argc; i++) {
        char req[1024];
        int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: aion-tls-static\r\n\r\n",
                          argv[i]);
        if (SSL_write(ssl, req, rl) != rl) {
            ERR_print_errors_fp(stderr);
            return 7;
        }
        int status;
        long len;
        if (response(ssl, &status, &len) != 0) {
            fprintf(stderr, "bad or missing response to %s\n", argv[i]);
            return 8;
        }
        printf("%d %ld\n", status, len);
        fflush(stdout);
        n++;
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    printf("DONE %d\n", n);
    return 0;
}
