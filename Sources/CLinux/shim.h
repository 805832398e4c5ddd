#ifndef OCIMAN_CLINUX_SHIM_H
#define OCIMAN_CLINUX_SHIM_H

// Linux interfaces Swift's Glibc module leaves out, for reading a container's listening sockets
// the way `ss` does: joining its network namespace and the socket-diagnostics netlink messages.
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>

// glibc declares setns(2) only under _GNU_SOURCE, which Swift's Glibc module is built without.
int setns(int fd, int nstype);
#define OCIMAN_CLONE_NEWNET 0x40000000

#endif
