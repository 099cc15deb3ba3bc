#include "ingest/error.hpp"

namespace ingest {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ingest"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_key:
        return "idempotency key must be 1-255 printable ASCII characters";
      case errc::payload_too_large:
        return "payload larger than the configured limit";
      case errc::conflict:
        return "idempotency key reused with a different payload";
      case errc::in_flight:
        return "a request with this idempotency key is still in flight";
      case errc::backpressure:
        return "too many publishes in flight; retry later";
      case errc::queue_full:
        return "queue is full; retry later";
      case errc::publish_timeout:
        return "no durable acknowledgement in time; retry with the same key";
      case errc::shutting_down:
        return "shutting down; no new work accepted";
      case errc::backend_unavailable:
        return "queue backend unavailable; retry later";
      case errc::lease_expired:
        return "delivery lease expired before it was settled";
      case errc::not_found:
        return "not found";
      case errc::invalid_config:
        return "invalid configuration";
      case errc::storage_error:
        return "storage error";
      case errc::not_supported:
        return "not supported by this backend";
      case errc::invalid_header:
        return "header name or value (or subject) that the backends cannot carry unchanged";
      case errc::deadline_passed:
        return "accepted after the deadline";
    }
    return "unknown ingest error";
  }
};

}  // namespace

const std::error_category& ingest_category() noexcept {
  static const category instance;
  return instance;
}

std::string_view errc_name(errc e) noexcept {
  switch (e) {
    case errc::invalid_key:
      return "invalid_key";
    case errc::payload_too_large:
      return "payload_too_large";
    case errc::conflict:
      return "conflict";
    case errc::in_flight:
      return "in_flight";
    case errc::backpressure:
      return "backpressure";
    case errc::queue_full:
      return "queue_full";
    case errc::publish_timeout:
      return "publish_timeout";
    case errc::shutting_down:
      return "shutting_down";
    case errc::backend_unavailable:
      return "backend_unavailable";
    case errc::lease_expired:
      return "lease_expired";
    case errc::not_found:
      return "not_found";
    case errc::invalid_config:
      return "invalid_config";
    case errc::storage_error:
      return "storage_error";
    case errc::not_supported:
      return "not_supported";
    case errc::invalid_header:
      return "invalid_header";
    case errc::deadline_passed:
      return "deadline_passed";
  }
  return "other";
}

bool is_retry_later(const std::error_code& ec) noexcept {
  if (ec.category() != ingest_category()) return false;
  switch (static_cast<errc>(ec.value())) {
    case errc::backpressure:
    case errc::queue_full:
    case errc::publish_timeout:
    case errc::shutting_down:
    case errc::backend_unavailable:
    case errc::storage_error:
      return true;
    default:
      return false;
  }
}

void throw_if(const std::error_code& ec, const std::string& what) {
  if (ec) throw error(ec, what);
}

}  // namespace ingest
