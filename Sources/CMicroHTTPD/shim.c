#define _GNU_SOURCE
#include "CMicroHTTPD.h"
#include <pthread.h>

struct MHD_Daemon *ociman_mhd_start(const struct ociman_mhd_config *c) {
    struct MHD_OptionItem options[] = {
        { MHD_OPTION_THREAD_POOL_SIZE, c->thread_pool_size, NULL },
        { MHD_OPTION_CONNECTION_LIMIT, c->connection_limit, NULL },
        { MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->per_ip_connection_limit, NULL },
        { MHD_OPTION_CONNECTION_TIMEOUT, c->connection_timeout_seconds, NULL },
        { MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)c->connection_memory_limit, NULL },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)c->completed, c->completed_cls },
        { MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)c->uri_logger, c->uri_logger_cls },
        { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)c->notify_connection, c->notify_connection_cls },
        { MHD_OPTION_END, 0, NULL },
    };
    // The port argument is ignored: the daemon has no listen socket (MHD_USE_NO_LISTEN_SOCKET).
    return MHD_start_daemon(c->flags, 0, NULL, NULL, c->access_handler, c->access_handler_cls,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

uint64_t ociman_mhd_size_unknown(void) { return MHD_SIZE_UNKNOWN; }
ssize_t ociman_mhd_reader_end_of_stream(void) { return MHD_CONTENT_READER_END_OF_STREAM; }
ssize_t ociman_mhd_reader_end_with_error(void) { return MHD_CONTENT_READER_END_WITH_ERROR; }

int ociman_mhd_connection_fd(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

void *ociman_mhd_socket_context(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

size_t ociman_mhd_request_header_size(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    return info ? info->header_size : 0;
}

void ociman_mhd_upgrade_close(struct MHD_UpgradeResponseHandle *urh) {
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

int ociman_accept(int listen_fd, struct sockaddr *address, socklen_t *length) {
    return accept4(listen_fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void ociman_name_thread(const char *name) { pthread_setname_np(pthread_self(), name); }
