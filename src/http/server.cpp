#include "ingest/http/server.hpp"

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>

#include "connection.hpp"
#include "ingest/error.hpp"
#include "server_state.hpp"

namespace ingest::http {

namespace beast = boost::beast;

void server_options::validate() const {
  auto bad = [](const std::string& what) { throw error(errc::invalid_config, "http server: " + what); };
  if (backlog < 1) bad("backlog must be at least 1");
  if (max_connections == 0) bad("max_connections must be at least 1");
  if (max_header_bytes < 256) bad("max_header_bytes must be at least 256");
  if (read_timeout <= std::chrono::milliseconds::zero()) bad("read_timeout must be positive");
  if (write_timeout <= std::chrono::milliseconds::zero()) bad("write_timeout must be positive");
  if (tls_cert_file.empty() != tls_key_file.empty()) bad("TLS needs both a certificate file and a key file");
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (ec) bad("host must be an IP address, not '" + host + "'");
}

void server::state::accept() {
  auto& io = *contexts[next_context];
  next_context = (next_context + 1) % contexts.size();
  acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || self->stopped) return;
    if (ec) {
      // Out of file descriptors (or another transient failure): existing connections
      // keep working; try again shortly instead of spinning.
      self->pause.expires_after(std::chrono::milliseconds(50));
      self->pause.async_wait([self](beast::error_code wec) {
        if (!wec && !self->stopped) self->accept();
      });
      return;
    }
    if (self->open.load() >= self->options.max_connections) {
      ++self->refused;
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      ++self->open;
      ++self->total;
      const auto id = ++self->next_id;
      auto launch = [&](auto s) {
        {
          std::lock_guard lock(self->mutex);
          self->sessions.emplace(id, s);
        }
        s->start();
      };
      if (self->tls)
        launch(std::make_shared<detail::connection<detail::tls_stream>>(std::move(socket), self, id, *self->tls));
      else
        launch(std::make_shared<detail::connection<beast::tcp_stream>>(std::move(socket), self, id));
    }
    self->accept();
  });
}

// One timer for every connection's deadline, checked an eighth of the shorter timeout
// apart (at most once a second): a deadline is enforced that much late at worst. It
// keeps running after stop() while connections finish their last answers.
void server::state::sweep_deadlines() {
  const auto every = std::clamp(std::min(options.read_timeout, options.write_timeout) / 8,
                                std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
  sweep.expires_after(every);
  sweep.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || (self->stopped && self->open.load() == 0)) return;
    auto live = self->live_sessions();
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    for (auto& s : live) s->expire_if_due(now);
    live.clear();  // a connection that ended meanwhile goes here, outside the lock
    self->sweep_deadlines();
  });
}

std::vector<std::shared_ptr<detail::session>> server::state::live_sessions() {
  std::vector<std::shared_ptr<detail::session>> live;
  std::lock_guard lock(mutex);
  live.reserve(sessions.size());
  for (auto& [id, weak] : sessions)
    if (auto s = weak.lock()) live.push_back(std::move(s));
  return live;
}

void server::state::close_idle() {
  for (auto& s : live_sessions()) s->close_if_idle();
}

server::server(asio::io_context& io, server_options options, handler h)
    : server(std::vector<asio::io_context*>{&io}, std::move(options), std::move(h)) {}

server::server(std::vector<asio::io_context*> contexts, server_options options, handler h) {
  options.validate();
  if (!h) throw error(errc::invalid_config, "http server: a handler is required");
  if (contexts.empty() || std::find(contexts.begin(), contexts.end(), nullptr) != contexts.end())
    throw error(errc::invalid_config, "http server: needs at least one io_context, and no null one");
  state_ = std::make_shared<state>(std::move(contexts), std::move(options), std::move(h));
}

server::~server() {
  stop();
}

namespace {

asio::ssl::context load_tls(const server_options& o) {
  asio::ssl::context ctx(asio::ssl::context::tls_server);
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                  asio::ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(o.tls_cert_file, ec);
  if (ec)
    throw error(errc::invalid_config,
                "http server: cannot load the TLS certificate " + o.tls_cert_file + ": " + ec.message());
  ctx.use_private_key_file(o.tls_key_file, asio::ssl::context::pem, ec);
  if (ec)
    throw error(errc::invalid_config, "http server: cannot load the TLS key " + o.tls_key_file + ": " + ec.message());
  return ctx;
}

}  // namespace

void server::start() {
  auto& s = *state_;
  if (!s.options.tls_cert_file.empty() && !s.tls) s.tls.emplace(load_tls(s.options));
  const tcp::endpoint endpoint(asio::ip::make_address(s.options.host), s.options.port);
  boost::system::error_code ec;
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(s.options.backlog, ec);
  if (ec)
    throw error(std::error_code(ec),
                "http server: cannot listen on " + s.options.host + ":" + std::to_string(s.options.port));
  s.bound_port = s.acceptor.local_endpoint().port();
  asio::dispatch(s.acceptor.get_executor(), [st = state_] {
    st->accept();
    st->sweep_deadlines();
  });
}

std::uint16_t server::port() const noexcept {
  return state_->bound_port;
}

void server::stop() {
  if (state_->stopped.exchange(true)) return;
  asio::dispatch(state_->acceptor.get_executor(), [st = state_] {
    boost::system::error_code ignored;
    st->acceptor.close(ignored);
    st->pause.cancel();
    if (st->open.load() == 0) st->sweep.cancel();  // else it ends with the last connection
  });
  state_->close_idle();
}

bool server::stopping() const noexcept {
  return state_->stopped;
}

server_stats server::stats() const {
  const auto& s = *state_;
  return {s.open.load(),     s.total.load(),        s.refused.load(), s.requests.load(),
          s.timeouts.load(), s.tls_failures.load(), s.streams.load()};
}

}  // namespace ingest::http
