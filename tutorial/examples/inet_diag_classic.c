/*
 * inet_diag_classic.c: list the TCP sockets the way the classic
 * NETLINK_INET_DIAG programs of the Linux 2.6 era did (lesson 03).
 *
 * The request is the old one: message type TCPDIAG_GETSOCK, flags
 * NLM_F_REQUEST | NLM_F_ROOT, and struct inet_diag_req (no protocol
 * field: the message type says TCP). Today's kernel still answers it,
 * through the compatibility path of net/ipv4/inet_diag.c.
 * `observer explain --legacy` shows the same request byte by byte.
 *
 * Build and run:  cc -o inet_diag_classic inet_diag_classic.c && ./inet_diag_classic
 *
 * Simplified: one request, no bytecode filter, errors reported with
 * perror() and the program ends.
 */
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <netinet/tcp.h>        /* TCP_ESTABLISHED ... TCP_CLOSING */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* The kernel's numbering (include/net/tcp_states.h), not the RFC's order. */
static const char *state_name[] = {
    "?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
    "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
};

int main(void)
{
    /* A netlink socket of the inet_diag family (today: NETLINK_SOCK_DIAG,
     * the same number, 4). */
    int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_INET_DIAG);
    if (fd < 0) {
        perror("socket(AF_NETLINK)");
        return 1;
    }

    /* Where to: nl_pid 0 is the kernel. */
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;

    /* What: a netlink header followed by the request. */
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req r;
    } req;
    memset(&req, 0, sizeof req);
    req.nlh.nlmsg_len = sizeof req;
    req.nlh.nlmsg_type = TCPDIAG_GETSOCK;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ROOT;
    req.nlh.nlmsg_seq = 1;
    req.r.idiag_family = AF_INET;
    /* As the classic programs wrote it. `+` binds tighter than `<<`, so
     * this is (1 << 12) - 1 = 0xfff: every state (lesson 03 explains). */
    req.r.idiag_states = (1 << TCP_CLOSING + 1) - 1;

    /* The envelope: msghdr -> sockaddr_nl, and msghdr -> iovec -> req. */
    struct iovec iov = { .iov_base = &req, .iov_len = sizeof req };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = &kernel;
    msg.msg_namelen = sizeof kernel;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sendmsg(fd, &msg, 0) < 0) {
        perror("sendmsg");
        return 1;
    }

    /* The answers: datagrams of messages, until NLMSG_DONE. */
    char buf[16384];
    for (;;) {
        ssize_t len = recv(fd, buf, sizeof buf, 0);
        if (len < 0) {
            perror("recv");
            return 1;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len);
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE)
                goto done;
            if (h->nlmsg_type == NLMSG_ERROR) {
                fprintf(stderr, "the kernel refused the request\n");
                return 1;
            }
            struct inet_diag_msg *m = NLMSG_DATA(h);
            char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
            inet_ntop(m->idiag_family, m->id.idiag_src, src, sizeof src);
            inet_ntop(m->idiag_family, m->id.idiag_dst, dst, sizeof dst);
            /* Ports travel in network byte order: ntohs(). */
            printf("%-12s %s:%u -> %s:%u  inode %u\n",
                   m->idiag_state < 12 ? state_name[m->idiag_state] : "?",
                   src, ntohs(m->id.idiag_sport), dst, ntohs(m->id.idiag_dport),
                   m->idiag_inode);
        }
    }
done:
    close(fd);
    return 0;
}
