/*
 * cfork: a plain fork-per-connection echo server in C, the way UNP's
 * tcpserv04 (section 5.10) writes it. bench measures echo-server's fork
 * mode against it in the same run: the standing answer to "what does a
 * fork server cost on this machine?".
 *
 *   cc -O2 -o cfork cfork.c && ./cfork 7000
 *
 * Listens on 127.0.0.1:PORT. SIGCHLD's handler reaps with waitpid(-1,
 * WNOHANG) in a loop (signals merge: UNP 5.10); accept() is restarted on
 * EINTR. The child closes the listening socket, echoes until EOF
 * (str_echo, UNP 5.3) and exits. No printing: a line per connection
 * would be a cost echo-server has and this has not, so bench sends
 * echo-server's output to /dev/null as well.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void sig_chld(int signo)
{
	int saved = errno;
	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static void str_echo(int fd)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n == 0)
			return; /* the client closed: EOF */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, n - off);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return;
			}
			off += w;
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	struct sigaction sa;
	int listenfd, connfd, on = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: cfork PORT\n");
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sig_chld;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL); /* no SA_RESTART: accept sees EINTR */
	signal(SIGPIPE, SIG_IGN);

	listenfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons(atoi(argv[1]));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listenfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
	    listen(listenfd, 1024) < 0) {
		perror("cfork: bind/listen");
		return 1;
	}
	for (;;) {
		connfd = accept(listenfd, NULL, NULL);
		if (connfd < 0) {
			if (errno == EINTR)
				continue; /* a child exited meanwhile */
			perror("cfork: accept");
			return 1;
		}
		if (fork() == 0) {
			close(listenfd);
			str_echo(connfd);
			_exit(0);
		}
		close(connfd);
	}
}
