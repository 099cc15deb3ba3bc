#pragma once
// Move-only, call-once callbacks for the virtual backend interfaces, and the adapter
// that turns any Asio completion handler into one. (Boost 1.81 has no
// any_completion_handler.)

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <memory>
#include <tuple>
#include <utility>

namespace ingest::detail {

template <class Signature>
class callback;

/// Type-erased, move-only function called at most once.
template <class... Args>
class callback<void(Args...)> {
 public:
  callback() = default;

  template <class F>
  requires(!std::is_same_v<std::decay_t<F>, callback>) callback(F&& f)
      : impl_(std::make_unique<model<std::decay_t<F>>>(std::forward<F>(f))) {}

  callback(callback&&) noexcept = default;
  callback& operator=(callback&&) noexcept = default;

  explicit operator bool() const noexcept { return impl_ != nullptr; }

  /// Invokes and empties the callback.
  void operator()(Args... args) {
    auto impl = std::move(impl_);
    impl->call(std::forward<Args>(args)...);
  }

 private:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual void call(Args... args) = 0;
  };
  template <class F>
  struct model final : concept_t {
    explicit model(F f) : fn(std::move(f)) {}
    void call(Args... args) override { std::move(fn)(std::forward<Args>(args)...); }
    F fn;
  };
  std::unique_ptr<concept_t> impl_;
};

/// Wraps an Asio completion handler into a callback that, whenever and wherever the
/// backend invokes it, posts the handler (with the arguments) to the handler's
/// associated executor (default: `fallback`). Outstanding work is tracked on that
/// executor until then, so `io_context::run()` does not return early.
template <class... Args, class Handler, class Executor>
callback<void(Args...)> to_callback(Handler&& handler, const Executor& fallback) {
  auto ex = boost::asio::get_associated_executor(handler, fallback);
  auto work = boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked);
  return [h = std::forward<Handler>(handler), work = std::move(work)](Args... args) mutable {
    boost::asio::post(work, [h = std::move(h), tuple = std::make_tuple(std::move(args)...)]() mutable {
      std::apply(std::move(h), std::move(tuple));
    });
  };
}

}  // namespace ingest::detail
