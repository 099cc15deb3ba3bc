// The responder (one per request) and the stream it can answer with.
#include <functional>
#include <memory>

#include "ingest/http/response.hpp"
#include "server_state.hpp"

namespace ingest::http {

responder::responder(std::shared_ptr<detail::session> s) noexcept : session_(std::move(s)) {}

namespace {
class function_session final : public detail::session {
 public:
  explicit function_session(std::function<void(response)> deliver) : deliver_(std::move(deliver)) {}
  void send(response r) override { deliver_(std::move(r)); }
  // No connection to stream on: the head is the whole answer, and the stream has ended.
  void begin_stream(response head, std::shared_ptr<detail::stream_state> s) override {
    s->ended();
    deliver_(std::move(head));
  }
  void stream_write(std::string) override {}
  void stream_close() override {}
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

std::shared_ptr<body_stream> responder::open_stream(response head, std::function<void()> on_end) {
  auto s = std::move(session_);
  auto st = std::make_shared<detail::stream_state>(s, std::move(on_end));
  if (!s) {
    st->ended();
    return st;
  }
  s->begin_stream(std::move(head), st);
  return st;
}

namespace detail {

bool stream_state::write(std::string data) {
  if (!open_.load()) return false;
  auto s = session_.lock();
  if (!s) return false;
  s->stream_write(std::move(data));
  return true;
}

void stream_state::close() {
  if (auto s = session_.lock()) s->stream_close();
}

void stream_state::ended() {
  if (!open_.exchange(false)) return;
  // Called once; dropping it here also drops what it holds (often this stream).
  if (auto f = std::move(on_end_)) f();
}

}  // namespace detail

}  // namespace ingest::http
