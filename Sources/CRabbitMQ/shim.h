#ifndef WHSYNC_CRABBITMQ_SHIM_H
#define WHSYNC_CRABBITMQ_SHIM_H

// librabbitmq-c moved its headers into rabbitmq-c/ in 0.12; Debian bookworm ships 0.11.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/framing.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

#include <stdint.h>
#include <sys/eventfd.h>

// The connection thread's wake-up signal (eventfd's flags are macros Swift cannot see).
static inline int whsync_wakeup_fd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

// Swift cannot call C variadic functions: amqp_login_with_properties takes the SASL
// credentials as varargs. Only PLAIN is offered, as RabbitMQ's default.
static inline amqp_rpc_reply_t whsync_login(amqp_connection_state_t state,
                                            const char *vhost, int channel_max,
                                            int frame_max, int heartbeat,
                                            const amqp_table_t *client_properties,
                                            const char *user, const char *password) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat,
                                    client_properties, AMQP_SASL_METHOD_PLAIN, user,
                                    password);
}

// Field values hold a union; building them in C keeps the Swift side free of union access.
static inline amqp_field_value_t whsync_field_utf8(amqp_bytes_t bytes) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_UTF8; v.value.bytes = bytes; return v;
}
static inline amqp_field_value_t whsync_field_bytes(amqp_bytes_t bytes) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_BYTES; v.value.bytes = bytes; return v;
}
static inline amqp_field_value_t whsync_field_i64(int64_t i) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_I64; v.value.i64 = i; return v;
}
static inline amqp_field_value_t whsync_field_bool(int b) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_BOOLEAN; v.value.boolean = b ? 1 : 0; return v;
}
static inline amqp_field_value_t whsync_field_f64(double d) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_F64; v.value.f64 = d; return v;
}
static inline amqp_field_value_t whsync_field_timestamp(uint64_t t) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_TIMESTAMP; v.value.u64 = t; return v;
}
static inline amqp_field_value_t whsync_field_table(amqp_table_t t) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_TABLE; v.value.table = t; return v;
}
static inline amqp_field_value_t whsync_field_array(amqp_array_t a) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_ARRAY; v.value.array = a; return v;
}
static inline amqp_field_value_t whsync_field_void(void) {
  amqp_field_value_t v; v.kind = AMQP_FIELD_KIND_VOID; return v;
}

// Method ids and property flags are cast macros that Swift does not import.
static const amqp_method_number_t WHSYNC_CONNECTION_CLOSE = AMQP_CONNECTION_CLOSE_METHOD;
static const amqp_method_number_t WHSYNC_CONNECTION_CLOSE_OK = AMQP_CONNECTION_CLOSE_OK_METHOD;
static const amqp_method_number_t WHSYNC_CONNECTION_BLOCKED = AMQP_CONNECTION_BLOCKED_METHOD;
static const amqp_method_number_t WHSYNC_CONNECTION_UNBLOCKED = AMQP_CONNECTION_UNBLOCKED_METHOD;
static const amqp_method_number_t WHSYNC_CHANNEL_CLOSE = AMQP_CHANNEL_CLOSE_METHOD;
static const amqp_method_number_t WHSYNC_CHANNEL_CLOSE_OK = AMQP_CHANNEL_CLOSE_OK_METHOD;
static const amqp_method_number_t WHSYNC_BASIC_DELIVER = AMQP_BASIC_DELIVER_METHOD;
static const amqp_method_number_t WHSYNC_BASIC_ACK = AMQP_BASIC_ACK_METHOD;
static const amqp_method_number_t WHSYNC_BASIC_NACK = AMQP_BASIC_NACK_METHOD;
static const amqp_method_number_t WHSYNC_BASIC_RETURN = AMQP_BASIC_RETURN_METHOD;
static const amqp_method_number_t WHSYNC_BASIC_CANCEL = AMQP_BASIC_CANCEL_METHOD;
static const amqp_method_number_t WHSYNC_BASIC_CANCEL_OK = AMQP_BASIC_CANCEL_OK_METHOD;

static const amqp_flags_t WHSYNC_FLAG_CONTENT_TYPE = AMQP_BASIC_CONTENT_TYPE_FLAG;
static const amqp_flags_t WHSYNC_FLAG_CONTENT_ENCODING = AMQP_BASIC_CONTENT_ENCODING_FLAG;
static const amqp_flags_t WHSYNC_FLAG_HEADERS = AMQP_BASIC_HEADERS_FLAG;
static const amqp_flags_t WHSYNC_FLAG_DELIVERY_MODE = AMQP_BASIC_DELIVERY_MODE_FLAG;
static const amqp_flags_t WHSYNC_FLAG_PRIORITY = AMQP_BASIC_PRIORITY_FLAG;
static const amqp_flags_t WHSYNC_FLAG_CORRELATION_ID = AMQP_BASIC_CORRELATION_ID_FLAG;
static const amqp_flags_t WHSYNC_FLAG_REPLY_TO = AMQP_BASIC_REPLY_TO_FLAG;
static const amqp_flags_t WHSYNC_FLAG_EXPIRATION = AMQP_BASIC_EXPIRATION_FLAG;
static const amqp_flags_t WHSYNC_FLAG_MESSAGE_ID = AMQP_BASIC_MESSAGE_ID_FLAG;
static const amqp_flags_t WHSYNC_FLAG_TIMESTAMP = AMQP_BASIC_TIMESTAMP_FLAG;
static const amqp_flags_t WHSYNC_FLAG_TYPE = AMQP_BASIC_TYPE_FLAG;
static const amqp_flags_t WHSYNC_FLAG_USER_ID = AMQP_BASIC_USER_ID_FLAG;
static const amqp_flags_t WHSYNC_FLAG_APP_ID = AMQP_BASIC_APP_ID_FLAG;

static inline int whsync_send_heartbeat(amqp_connection_state_t state) {
  amqp_frame_t frame;
  frame.frame_type = AMQP_FRAME_HEARTBEAT;
  frame.channel = 0;
  return amqp_send_frame(state, &frame);
}

#endif
