#ifndef OCIMAN_CMICROHTTPD_H
#define OCIMAN_CMICROHTTPD_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <microhttpd.h>

/// Everything ocimand sets on a daemon. The shim turns it into an MHD_OPTION_ARRAY because
/// MHD_start_daemon is variadic and Swift cannot call it.
struct ociman_mhd_config {
    unsigned int flags;
    unsigned int thread_pool_size;
    unsigned int connection_limit;
    unsigned int per_ip_connection_limit;
    unsigned int connection_timeout_seconds;
    size_t connection_memory_limit;
    MHD_AccessHandlerCallback access_handler;
    void *access_handler_cls;
    MHD_RequestCompletedCallback completed;
    void *completed_cls;
    void *(*uri_logger)(void *cls, const char *uri, struct MHD_Connection *connection);
    void *uri_logger_cls;
    MHD_NotifyConnectionCallback notify_connection;
    void *notify_connection_cls;
};

struct MHD_Daemon *ociman_mhd_start(const struct ociman_mhd_config *config);

/// Cast macros Swift cannot import.
uint64_t ociman_mhd_size_unknown(void);
ssize_t ociman_mhd_reader_end_of_stream(void);
ssize_t ociman_mhd_reader_end_with_error(void);

/// The client socket of a connection, or -1.
int ociman_mhd_connection_fd(struct MHD_Connection *connection);

/// What the NOTIFY_CONNECTION callback stored for this connection, or NULL.
void *ociman_mhd_socket_context(struct MHD_Connection *connection);

/// Bytes of the request head (request line, header lines, empty line) once it is in; 0 before.
size_t ociman_mhd_request_header_size(struct MHD_Connection *connection);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC (Glibc's Swift module lacks accept4).
int ociman_accept(int listen_fd, struct sockaddr *address, socklen_t *length);

/// Names the calling thread (pthread_setname_np needs _GNU_SOURCE), as ps and gdb show it.
void ociman_name_thread(const char *name);

/// Gives an upgraded connection's socket back to libmicrohttpd, which closes it
/// (MHD_upgrade_action is variadic).
void ociman_mhd_upgrade_close(struct MHD_UpgradeResponseHandle *urh);

#endif
