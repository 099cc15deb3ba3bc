#pragma once
// One HTTP connection, plain or TLS: reads requests, hands them to the handler, writes
// the answers in order (or one streamed answer), and enforces the deadlines the
// server's sweeper checks. Included by server.cpp only.

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <deque>
#include <type_traits>

#include "ingest/http/response.hpp"
#include "server_state.hpp"

namespace ingest::http::detail {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

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
    if (streaming_) streaming_->ended();
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

  void begin_stream(response head, std::shared_ptr<stream_state> s) override {
    asio::dispatch(stream_.get_executor(), [self = self(), head = std::move(head), s = std::move(s)]() mutable {
      self->start_streaming(std::move(head), std::move(s));
    });
  }

  void stream_write(std::string data) override {
    asio::dispatch(stream_.get_executor(),
                   [self = self(), data = std::move(data)]() mutable { self->queue_chunk(std::move(data)); });
  }

  void stream_close() override {
    asio::dispatch(stream_.get_executor(), [self = self()] {
      self->closing_ = true;
      self->write_more();
    });
  }

  // At stop: idle connections and event streams close; a request in hand is answered.
  void close_if_idle() override {
    asio::dispatch(stream_.get_executor(), [self = self()] {
      if (!self->busy_ || self->streaming_) self->close();
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

  // ---- a response streamed in pieces (responder::open_stream) ----

  void start_streaming(response head, std::shared_ptr<stream_state> s) {
    if (head_) {  // HEAD: the headers alone
      s->ended();
      keep_alive_ = false;
      return write(std::move(head));
    }
    streaming_ = std::move(s);
    ++owner_->streams;
    head.version(version_);
    head.keep_alive(false);  // the body ends when the connection closes
    if (head.find(bhttp::field::server) == head.end()) head.set(bhttp::field::server, owner_->options.server_name);
    head.body().clear();
    head.erase(bhttp::field::content_length);
    head.erase(bhttp::field::transfer_encoding);
    out_.emplace(std::move(head));
    header_.emplace(*out_);
    arm(owner_->options.write_timeout, phase::writing);
    bhttp::async_write_header(stream_, *header_, [self = self()](beast::error_code ec, std::size_t) {
      self->header_.reset();
      self->out_.reset();
      if (ec) return self->close();
      self->disarm();
      self->header_sent_ = true;
      self->watch_peer();
      self->write_more();
    });
  }

  // A client of an event stream says nothing more: a byte, an end of stream or an
  // error all end it.
  void watch_peer() {
    stream_.async_read_some(buffer_.prepare(256), [self = self()](beast::error_code, std::size_t) { self->close(); });
  }

  void queue_chunk(std::string data) {
    if (!streaming_ || closing_) return;
    if (queued_ + data.size() > owner_->options.max_stream_backlog) return close();  // a client that does not read
    queued_ += data.size();
    chunks_.push_back(std::move(data));
    write_more();
  }

  void write_more() {
    if (!streaming_ || writing_ || !header_sent_) return;
    if (chunks_.empty()) {
      if (closing_) finish();
      return;
    }
    writing_ = true;
    arm(owner_->options.write_timeout, phase::writing);
    asio::async_write(stream_, asio::buffer(chunks_.front()), [self = self()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      self->queued_ -= self->chunks_.front().size();
      self->chunks_.pop_front();
      if (ec) return self->close();
      self->disarm();
      self->write_more();
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
    if (auto s = std::move(streaming_)) {
      --owner_->streams;
      s->ended();
    }
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
  // An event stream: what is queued for it, and where its writing stands.
  std::shared_ptr<stream_state> streaming_;
  std::optional<bhttp::response_serializer<bhttp::string_body>> header_;
  std::deque<std::string> chunks_;
  std::size_t queued_ = 0;
  bool header_sent_ = false;
  bool writing_ = false;
  bool closing_ = false;
};

}  // namespace ingest::http::detail
