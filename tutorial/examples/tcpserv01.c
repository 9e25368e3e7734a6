/*
 * tcpserv01.c: a concurrent echo server as a student first writes it,
 * after UNP's tcpserv01 (lesson 10): fork per client, and no SIGCHLD
 * handler. It echoes correctly, and every child it leaves is a zombie.
 *
 * Build and run:  cc -o tcpserv01 tcpserv01.c && ./tcpserv01 6666
 *
 * Simplified: IPv4 loopback only, errors end the program.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void str_echo(int fd)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, n - off);
            if (w < 0)
                return;
            off += w;
        }
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 6666;
    int listenfd = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listenfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listenfd, 1024) < 0) {
        perror("bind/listen");
        return 1;
    }
    for (;;) {
        int connfd = accept(listenfd, NULL, NULL);
        if (connfd < 0)
            continue;
        if (fork() == 0) {
            close(listenfd);   /* the child serves this client only */
            str_echo(connfd);
            _exit(0);          /* ...and becomes a zombie: nobody waits */
        }
        close(connfd);         /* the parent goes back to accept() */
    }
}
