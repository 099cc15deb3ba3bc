#include "ingest/durable_queue.hpp"

#include "ingest/fingerprint.hpp"
#include "ingest/receipt_signer.hpp"

namespace ingest {

error_code durable_queue::prepare(envelope& message) {
  if (const auto invalid = validate_envelope(message)) return invalid;
  if (message.fingerprint.empty()) message.fingerprint = fingerprint(message.payload);
  if (message.receipt_id.empty()) message.receipt_id = make_receipt_id();
  return {};
}

void durable_queue::check_and_publish(envelope message, callback<error_code, receipt> done) {
  if (const auto invalid = prepare(message)) return done(invalid, receipt{});
  do_publish(std::move(message), std::move(done));
}

void durable_queue::sign_receipt(const receipt_signer* signer, envelope& m) noexcept {
  if (!signer) return;
  // Backends call this in writer threads and completion handlers: a failure (OpenSSL,
  // memory) leaves the id unsigned rather than taking the publish or the thread down.
  try {
    if (auto id = signer->sign(m.accepted_at, m.receipt_claims)) m.receipt_id = std::move(*id);
  } catch (...) {
  }
}

void durable_queue::do_find(std::string, callback<error_code, message_status> done) {
  done(make_error_code(errc::not_supported), message_status{});
}

}  // namespace ingest
