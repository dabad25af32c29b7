/*
 * C baseline for the AMQP throughput benchmark, straight on librabbitmq-c (0.11 or 0.12+).
 *
 *   amqp_loop HOST PORT QUEUE COUNT SIZE
 *
 * Declares QUEUE afresh (deleted first) as a durable quorum queue, then
 *   (a) publishes COUNT persistent messages of SIZE bytes with publisher confirms, pipelined
 *       with at most 1000 unconfirmed messages in flight;
 *   (b) consumes them with basic.qos prefetch 1000, one basic.ack per message.
 * Each phase is timed; the queue is deleted at the end.
 *
 * Output (stdout):
 *   c publish-confirm msgs/s: X
 *   c consume-ack msgs/s: Y
 *   RESULT impl=c phase=publish-confirm count=N seconds=S msgs_per_s=X
 *   RESULT impl=c phase=consume-ack count=N seconds=S msgs_per_s=Y
 *
 * Build: gcc -O2 -o amqp_loop amqp_loop.c $(pkg-config --cflags --libs librabbitmq)
 */
#if defined(__has_include)
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#define HAVE_RABBITMQ_C_DIR 1
#endif
#endif
#ifndef HAVE_RABBITMQ_C_DIR
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define CHANNEL 1
#define WINDOW 1000
#define PREFETCH 1000

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "amqp_loop: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check_status(int status, const char *what) {
    if (status < 0) die("%s: %s", what, amqp_error_string2(status));
}

static void check_reply(amqp_rpc_reply_t r, const char *what) {
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return;
    case AMQP_RESPONSE_NONE:
        die("%s: missing RPC reply type", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        die("%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = (amqp_connection_close_t *)r.reply.decoded;
            die("%s: connection closed by server: %u %.*s", what, m->reply_code,
                (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = (amqp_channel_close_t *)r.reply.decoded;
            die("%s: channel closed by server: %u %.*s", what, m->reply_code,
                (int)m->reply_text.len, (char *)m->reply_text.bytes);
        }
        die("%s: unknown server exception, method id 0x%08X", what, r.reply.id);
    }
}

/* Confirm bookkeeping: confirmed[tag] for tags 1..count; everything below `low` is confirmed. */
struct confirms {
    unsigned char *confirmed;
    uint64_t low;   /* lowest tag not known to be confirmed */
    uint64_t count; /* how many tags are confirmed */
    uint64_t max_tag;
};

static void confirm_tag(struct confirms *c, uint64_t tag, int multiple) {
    if (tag == 0 || tag > c->max_tag) die("broker confirmed unknown delivery tag %llu", (unsigned long long)tag);
    if (multiple) {
        for (uint64_t t = c->low; t <= tag; t++) {
            if (!c->confirmed[t]) {
                c->confirmed[t] = 1;
                c->count++;
            }
        }
    } else if (!c->confirmed[tag]) {
        c->confirmed[tag] = 1;
        c->count++;
    }
    while (c->low <= c->max_tag && c->confirmed[c->low]) c->low++;
}

/* Handles one frame read while publishing. */
static void handle_publish_frame(amqp_frame_t *f, struct confirms *c) {
    if (f->frame_type != AMQP_FRAME_METHOD) return; /* heartbeats etc. */
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *ack = (amqp_basic_ack_t *)f->payload.method.decoded;
        confirm_tag(c, ack->delivery_tag, ack->multiple);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *nack = (amqp_basic_nack_t *)f->payload.method.decoded;
        die("broker nacked delivery tag %llu (multiple=%d)", (unsigned long long)nack->delivery_tag,
            nack->multiple);
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *m = (amqp_channel_close_t *)f->payload.method.decoded;
        die("channel closed by server while publishing: %u %.*s", m->reply_code, (int)m->reply_text.len,
            (char *)m->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *m = (amqp_connection_close_t *)f->payload.method.decoded;
        die("connection closed by server while publishing: %u %.*s", m->reply_code,
            (int)m->reply_text.len, (char *)m->reply_text.bytes);
    }
    default:
        die("unexpected method 0x%08X while publishing", f->payload.method.id);
    }
}

static void report(const char *phase, uint64_t count, double seconds) {
    double rate = seconds > 0 ? (double)count / seconds : 0.0;
    printf("c %s msgs/s: %.0f\n", phase, rate);
    printf("RESULT impl=c phase=%s count=%llu seconds=%.3f msgs_per_s=%.0f\n", phase,
           (unsigned long long)count, seconds, rate);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT QUEUE COUNT SIZE\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    const char *queue_name = argv[3];
    long long count_arg = atoll(argv[4]);
    long long size_arg = atoll(argv[5]);
    if (port <= 0 || count_arg <= 0 || size_arg < 0) die("bad arguments");
    uint64_t count = (uint64_t)count_arg;
    size_t size = (size_t)size_arg;

    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    if (!sock) die("cannot create TCP socket");
    check_status(amqp_socket_open(sock, host, port), "connect");
    check_reply(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    amqp_channel_open(conn, CHANNEL);
    check_reply(amqp_get_rpc_reply(conn), "channel.open");

    amqp_bytes_t queue = amqp_cstring_bytes(queue_name);

    /* fresh quorum queue */
    amqp_queue_delete(conn, CHANNEL, queue, 0, 0);
    check_reply(amqp_get_rpc_reply(conn), "queue.delete");
    amqp_table_entry_t qargs_entries[1];
    qargs_entries[0].key = amqp_cstring_bytes("x-queue-type");
    qargs_entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
    qargs_entries[0].value.value.bytes = amqp_cstring_bytes("quorum");
    amqp_table_t qargs = {1, qargs_entries};
    amqp_queue_declare(conn, CHANNEL, queue, 0, 1, 0, 0, qargs);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare");

    /* (a) publish with confirms, window of WINDOW unconfirmed */
    amqp_confirm_select(conn, CHANNEL);
    check_reply(amqp_get_rpc_reply(conn), "confirm.select");

    char *payload = malloc(size ? size : 1);
    if (!payload) die("out of memory");
    memset(payload, 'x', size);
    amqp_bytes_t body = {size, payload};
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;
    props.content_type = amqp_cstring_bytes("application/octet-stream");

    struct confirms conf = {0};
    conf.confirmed = calloc(count + 2, 1);
    if (!conf.confirmed) die("out of memory");
    conf.low = 1;
    conf.max_tag = count;

    amqp_frame_t frame;
    struct timeval zero = {0, 0};
    double t0 = now_s();
    for (uint64_t published = 0; published < count;) {
        /* Block while the window is full, then drain whatever acks are already waiting. */
        while (published - conf.count >= WINDOW) {
            check_status(amqp_simple_wait_frame(conn, &frame), "wait for confirm");
            handle_publish_frame(&frame, &conf);
        }
        for (;;) {
            int st = amqp_simple_wait_frame_noblock(conn, &frame, &zero);
            if (st == AMQP_STATUS_TIMEOUT) break;
            check_status(st, "poll for confirms");
            handle_publish_frame(&frame, &conf);
        }
        check_status(amqp_basic_publish(conn, CHANNEL, amqp_empty_bytes, queue, 0, 0, &props, body), "publish");
        published++;
    }
    while (conf.count < count) {
        check_status(amqp_simple_wait_frame(conn, &frame), "wait for confirm");
        handle_publish_frame(&frame, &conf);
    }
    double t_pub = now_s() - t0;
    amqp_maybe_release_buffers(conn);
    report("publish-confirm", count, t_pub);

    /* The queue must hold them all now. */
    amqp_queue_declare_ok_t *dok = amqp_queue_declare(conn, CHANNEL, queue, 1, 1, 0, 0, qargs);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare passive");
    if (dok->message_count != count)
        die("queue holds %u messages after publishing, expected %llu", dok->message_count,
            (unsigned long long)count);

    /* (b) consume with prefetch, ack one by one */
    amqp_basic_qos(conn, CHANNEL, 0, PREFETCH, 0);
    check_reply(amqp_get_rpc_reply(conn), "basic.qos");
    t0 = now_s();
    amqp_basic_consume_ok_t *cok =
        amqp_basic_consume(conn, CHANNEL, queue, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume");
    amqp_bytes_t ctag = amqp_bytes_malloc_dup(cok->consumer_tag);

    uint64_t consumed = 0;
    while (consumed < count) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, NULL, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
                /* a non-delivery frame arrived (e.g. basic.cancel): read and judge it */
                check_status(amqp_simple_wait_frame(conn, &frame), "read frame");
                if (frame.frame_type == AMQP_FRAME_METHOD &&
                    frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD)
                    die("consumer cancelled by broker after %llu messages", (unsigned long long)consumed);
                if (frame.frame_type == AMQP_FRAME_METHOD &&
                    (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                     frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD))
                    die("broker closed the channel/connection while consuming");
                continue;
            }
            check_reply(r, "consume");
        }
        if (env.message.body.len != size)
            die("got a message of %zu bytes, expected %zu", env.message.body.len, size);
        check_status(amqp_basic_ack(conn, CHANNEL, env.delivery_tag, 0), "basic.ack");
        amqp_destroy_envelope(&env);
        consumed++;
    }
    double t_con = now_s() - t0;
    report("consume-ack", count, t_con);

    amqp_basic_cancel(conn, CHANNEL, ctag);
    check_reply(amqp_get_rpc_reply(conn), "basic.cancel");
    amqp_bytes_free(ctag);
    amqp_queue_delete(conn, CHANNEL, queue, 0, 0);
    check_reply(amqp_get_rpc_reply(conn), "queue.delete (cleanup)");

    check_reply(amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS), "channel.close");
    check_reply(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
    amqp_destroy_connection(conn);
    free(payload);
    free(conf.confirmed);
    return 0;
}
