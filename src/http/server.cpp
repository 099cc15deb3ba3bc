#include "ingest/http/server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "ingest/error.hpp"
#include "ingest/http/response.hpp"

namespace ingest::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

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

struct server::state : std::enable_shared_from_this<server::state> {
  state(std::vector<asio::io_context*> c, server_options o, handler h)
      : contexts(std::move(c)), options(std::move(o)), on_request(std::move(h)),
        acceptor(asio::make_strand(*contexts.front())), pause(acceptor.get_executor()),
        sweep(acceptor.get_executor()) {}

  const std::vector<asio::io_context*> contexts;  // connections go round-robin over them
  std::size_t next_context = 0;  // on the acceptor's strand
  const server_options options;
  const handler on_request;
  tcp::acceptor acceptor;
  asio::steady_timer pause;  // after EMFILE: wait before accepting again
  asio::steady_timer sweep;  // enforces the connections' read and write deadlines
  std::optional<asio::ssl::context> tls;  // set by start() when TLS files are given
  std::atomic<bool> stopped{false};
  std::atomic<std::uint16_t> bound_port{0};
  std::atomic<std::uint64_t> open{0}, total{0}, refused{0}, requests{0}, timeouts{0}, tls_failures{0}, next_id{0};
  std::mutex mutex;
  std::unordered_map<std::uint64_t, std::weak_ptr<detail::session>> sessions;

  void accept();
  void close_idle();
  void sweep_deadlines();
  // The open connections, copied under the mutex; drop them outside it (a connection's
  // destructor takes the same mutex).
  std::vector<std::shared_ptr<detail::session>> live_sessions();
};

namespace detail {

// What the responder and the server see of a connection, plain or TLS.
class session : public std::enable_shared_from_this<session> {
 public:
  using clock_ticks = std::chrono::steady_clock::rep;
  virtual ~session() = default;
  // From any thread: write the answer on the connection's strand.
  virtual void send(response r) = 0;
  virtual void close_if_idle() = 0;
  // From the sweeper: closes the connection on its strand if its deadline has passed.
  virtual void expire_if_due(clock_ticks now) = 0;
  // Where send() writes (empty: no connection).
  virtual asio::any_io_executor executor() = 0;

 protected:
  using owner = server::state;  // a friend of the server names its state for the connections
};

namespace {

using tls_stream = beast::ssl_stream<beast::tcp_stream>;

template <class Stream>
class connection final : public session {
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

 public:
  template <class... TlsContext>
  connection(tcp::socket socket, std::shared_ptr<owner> server, std::uint64_t id, TlsContext&... tls)
      : stream_(beast::tcp_stream(std::move(socket)), tls...), owner_(std::move(server)), id_(id) {
    boost::system::error_code ec;
    info_.remote = socket_().remote_endpoint(ec).address();
    info_.connection = id;
    socket_().set_option(tcp::no_delay(true), ec);
  }

  ~connection() override {
    --owner_->open;
    std::lock_guard lock(owner_->mutex);
    owner_->sessions.erase(id_);
  }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = self()] {
      if constexpr (is_tls)
        self->handshake();
      else
        self->read_next();
    });
  }

  void send(response r) override {
    asio::dispatch(stream_.get_executor(), [self = self(), r = std::move(r)]() mutable { self->write(std::move(r)); });
  }

  asio::any_io_executor executor() override { return stream_.get_executor(); }

  void close_if_idle() override {
    asio::dispatch(stream_.get_executor(), [self = self()] {
      if (!self->busy_) self->close();
    });
  }

  void expire_if_due(clock_ticks now) override {
    const auto due = deadline_.load(std::memory_order_relaxed);
    if (due == 0 || now < due) return;
    asio::dispatch(stream_.get_executor(), [self = self()] {
      const auto d = self->deadline_.load(std::memory_order_relaxed);
      if (d == 0 || std::chrono::steady_clock::now().time_since_epoch().count() < d) return;  // re-armed since
      self->deadline_.store(0, std::memory_order_relaxed);
      if (self->phase_ == phase::reading) ++self->owner_->timeouts;
      self->close();  // the pending operation fails and ends the connection
    });
  }

 private:
  std::shared_ptr<connection> self() { return std::static_pointer_cast<connection>(shared_from_this()); }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  tcp::socket& socket_() { return lowest().socket(); }

  // Deadlines are a time stamp the server's sweeper reads (one timer for all
  // connections): a Beast timer armed and cancelled per read and write cost about a
  // fifth of the CPU time of a server that answers at once (bare_http).
  enum class phase { handshake, reading, writing };
  void arm(std::chrono::milliseconds limit, phase p) {
    phase_ = p;
    deadline_.store((std::chrono::steady_clock::now() + limit).time_since_epoch().count(), std::memory_order_relaxed);
  }
  void disarm() { deadline_.store(0, std::memory_order_relaxed); }

  // The handshake has the read deadline: a client that connects and says nothing is cut off.
  void handshake() {
    arm(owner_->options.read_timeout, phase::handshake);
    stream_.async_handshake(asio::ssl::stream_base::server, [self = self()](beast::error_code ec) {
      if (ec) {
        ++self->owner_->tls_failures;
        return self->close();
      }
      self->read_next();
    });
  }

  void read_next() {
    if (owner_->stopped) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(owner_->options.max_header_bytes));
    parser_->body_limit(owner_->options.max_body_bytes);
    arm(owner_->options.read_timeout, phase::reading);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = self()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    const auto& req = parser_->get();
    // curl and browsers wait for this before sending a larger body.
    if (req[bhttp::field::expect] == "100-continue" && !parser_->is_done()) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, req.version());
      bhttp::async_write(stream_, *cont, [self = self(), cont](beast::error_code wec, std::size_t) {
        if (wec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = self()](beast::error_code ec, std::size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    ++owner_->requests;
    busy_ = true;
    disarm();  // the handler decides how long the answer takes
    request req = parser_->release();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == bhttp::verb::head;
    owner_->on_request(std::move(req), info_, responder(shared_from_this()));
  }

  void on_read_error(beast::error_code ec) {
    // The sweeper closes a connection past its read deadline: the read ends aborted.
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated)
      return close();
    // A request we cannot read is answered and the connection closed: the rest of the
    // stream cannot be trusted to start at a message boundary.
    reply_to last;  // the connection closes after this answer
    last.keep_alive = false;
    busy_ = true;
    keep_alive_ = false;
    version_ = 11;
    head_ = false;
    if (ec == bhttp::error::body_limit)
      write(error_response(last, status::payload_too_large, "body_too_large",
                           "request body over " + std::to_string(owner_->options.max_body_bytes) + " bytes"));
    else if (ec == bhttp::error::header_limit)
      write(error_response(last, status::request_header_fields_too_large, "headers_too_large",
                           "request headers over " + std::to_string(owner_->options.max_header_bytes) + " bytes"));
    else
      write(error_response(last, status::bad_request, "bad_request", "malformed HTTP request: " + ec.message()));
  }

  void write(response r) {
    r.version(version_);
    const bool keep = keep_alive_ && !owner_->stopped;
    r.keep_alive(keep);
    if (r.find(bhttp::field::server) == r.end()) r.set(bhttp::field::server, owner_->options.server_name);
    r.prepare_payload();
    // A response to HEAD has the headers of the GET answer and no content (RFC 9110).
    if (head_) r.body().clear();
    out_.emplace(std::move(r));
    arm(owner_->options.write_timeout, phase::writing);
    bhttp::async_write(stream_, *out_, [self = self(), keep](beast::error_code ec, std::size_t) {
      self->out_.reset();
      self->busy_ = false;
      if (ec) return self->close();
      if (!keep) return self->finish();
      self->read_next();
    });
  }

  // The last answer is written: TLS says goodbye (close_notify, bounded by the write
  // deadline) before the socket closes.
  void finish() {
    if constexpr (is_tls) {
      arm(owner_->options.write_timeout, phase::writing);
      stream_.async_shutdown([self = self()](beast::error_code) { self->close(); });
    } else {
      close();
    }
  }

  // Also called with a read pending (idle connections at stop, timeouts): closing the
  // socket cancels it.
  void close() {
    boost::system::error_code ignored;
    socket_().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().close();
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<response> out_;
  std::shared_ptr<owner> owner_;
  std::uint64_t id_;
  request_info info_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;  // the request being answered is a HEAD
  bool busy_ = false;  // a request is being handled or answered
  phase phase_ = phase::handshake;
  std::atomic<clock_ticks> deadline_{0};  // steady_clock ticks; 0: none (a handler is at work)
};

}  // namespace
}  // namespace detail

// ---- responder --------------------------------------------------------------------

responder::responder(std::shared_ptr<detail::session> s) noexcept : session_(std::move(s)) {}

namespace {
class function_session final : public detail::session {
 public:
  explicit function_session(std::function<void(response)> deliver) : deliver_(std::move(deliver)) {}
  void send(response r) override { deliver_(std::move(r)); }
  void close_if_idle() override {}
  void expire_if_due(clock_ticks) override {}
  asio::any_io_executor executor() override { return {}; }

 private:
  std::function<void(response)> deliver_;
};
}  // namespace

responder::responder(std::function<void(response)> deliver)
    : session_(std::make_shared<function_session>(std::move(deliver))) {}

responder& responder::operator=(responder&& other) noexcept {
  if (this != &other) {
    if (session_) {
      session_->send(error_response(reply_to{}, status::internal_server_error, "internal", "request dropped"));
    }
    session_ = std::move(other.session_);
  }
  return *this;
}

responder::~responder() {
  if (!session_) return;
  try {
    session_->send(error_response(reply_to{}, status::internal_server_error, "internal", "request dropped"));
  } catch (...) {  // out of memory while dropping: the connection closes instead
  }
}

asio::any_io_executor responder::executor() const {
  return session_ ? session_->executor() : asio::any_io_executor{};
}

void responder::operator()(response r) {
  if (auto s = std::move(session_)) s->send(std::move(r));
}

// ---- server -----------------------------------------------------------------------

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
  if (ec) throw error(errc::invalid_config, "http server: cannot load the TLS certificate " + o.tls_cert_file + ": " + ec.message());
  ctx.use_private_key_file(o.tls_key_file, asio::ssl::context::pem, ec);
  if (ec) throw error(errc::invalid_config, "http server: cannot load the TLS key " + o.tls_key_file + ": " + ec.message());
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
    throw error(std::error_code(ec), "http server: cannot listen on " + s.options.host + ":" +
                                         std::to_string(s.options.port));
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
  return {s.open.load(), s.total.load(), s.refused.load(), s.requests.load(), s.timeouts.load(), s.tls_failures.load()};
}

}  // namespace ingest::http
