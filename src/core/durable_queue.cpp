#include "ingest/durable_queue.hpp"

namespace ingest {

void durable_queue::do_find(std::string, callback<error_code, message_status> done) {
  done(make_error_code(errc::not_supported), message_status{});
}

}  // namespace ingest
