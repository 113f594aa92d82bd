// Keeps OpenSSL's error queue empty before every TLS call of caf::openssl.
//
// Why: OpenSSL keeps one error queue per thread, and SSL_get_error() reports
// SSL_ERROR_SSL whenever that queue holds an entry, whatever the call it is
// asked about did ("The current thread's error queue must be empty before the
// TLS/SSL I/O operation is attempted", SSL_get_error(3)). caf::openssl 0.17.6
// (libcaf_openssl/src/openssl/session.cpp) never empties it: the only call
// that would, get_ssl_error(), sits inside CAF_LOG_INFO, which Debian's build
// (CAF_LOG_LEVEL_QUIET) compiles out. All fabric sockets share CAF's one I/O
// thread, so an error left by one connection fails the next SSL_read that
// merely would block on another: CAF drops that healthy connection and every
// proxy on it (exit_reason remote_link_unreachable).
//
// That is what broke two links in opposite directions between the same two
// brokers: the second link dials a node it already has a connection to, CAF
// keeps the first connection and closes the new one as redundant
// (basp/instance.cpp, server_handshake), without a TLS close_notify; the
// peer's read of it queues "unexpected eof while reading", and its next read
// on the first connection kills it. A peer killed with -9, or one refused
// during the TLS handshake, did the same to the other connections of a
// broker.
//
// How: this file defines SSL_connect, SSL_accept, SSL_read and SSL_write in
// the executable. The dynamic linker binds libcaf_openssl's calls to these
// definitions before libssl's (ELF symbol interposition); each clears the
// calling thread's queue and calls libssl's function (dlsym RTLD_NEXT).
// Boost.Asio (AMQPS, the inspector) clears the queue itself before each call,
// so for it this changes nothing. tls_error_queue_guarded() tells whether the
// definitions are the ones in use.

#include <dlfcn.h>

#include <cstdlib>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "federation/actors.hpp"

namespace {

/// Returns libssl's definition of `name` (the next one after ours).
template<class F>
F next_definition(const char* name) {
  auto* f = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
  if (f == nullptr)
    ::abort(); // libssl is linked: cannot happen.
  return f;
}

} // namespace

extern "C" {

int SSL_connect(SSL* ssl) {
  static auto next = next_definition<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return next(ssl);
}

int SSL_accept(SSL* ssl) {
  static auto next = next_definition<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return next(ssl);
}

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto next = next_definition<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return next(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto next
    = next_definition<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return next(ssl, buf, num);
}

} // extern "C"

namespace flotilla::federation {

bool tls_error_queue_guarded() {
  // What libcaf_openssl's calls resolve to: the first definition in the
  // global scope.
  auto* f = ::dlsym(RTLD_DEFAULT, "SSL_read");
  auto* mine = reinterpret_cast<void*>(&::SSL_read);
  return f == mine;
}

} // namespace flotilla::federation
