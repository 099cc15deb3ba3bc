#include "queue_url.hpp"

#include <stdexcept>

#include "ingest/error.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/sqlite/queue.hpp"
#ifdef EXAM_HAVE_NATS
#include "ingest/nats/queue.hpp"
#endif
#ifdef EXAM_HAVE_SQS
#include "ingest/sqs/queue.hpp"
#endif

namespace exam {

namespace {

std::unique_ptr<ingest::durable_queue> make_queue(const std::string& url, ingest::durable_queue::executor_type ex) {
  if (url == "memory") return std::make_unique<ingest::memory_queue>(ex);
  if (url.starts_with("sqlite://")) {
    auto options = ingest::sqlite::queue_options::from_url(url);
    return std::make_unique<ingest::sqlite::queue>(ex, options);
  }
  if (url.starts_with("nats://") || url.starts_with("tls://")) {
#ifdef EXAM_HAVE_NATS
    return ingest::nats::open_queue(ex, ingest::nats::queue_options::from_url(url));
#else
    throw ingest::error(ingest::errc::invalid_config, "this build has no NATS backend (INGEST_WITH_NATS=OFF)");
#endif
  }
  if (url.starts_with("sqs+http://") || url.starts_with("sqs+https://")) {
#ifdef EXAM_HAVE_SQS
    return std::make_unique<ingest::sqs::queue>(ex, ingest::sqs::queue_options::from_url(url));
#else
    throw ingest::error(ingest::errc::invalid_config, "this build has no SQS backend (INGEST_WITH_SQS=OFF)");
#endif
  }
  throw ingest::error(ingest::errc::invalid_config,
                      "unknown queue URL (sqlite://FILE, nats://HOST:PORT, tls://HOST:PORT, "
                      "sqs+http[s]://HOST:PORT/ACCOUNT/QUEUE or memory)");
}

// What to look at when a queue of this kind cannot be opened.
const char* what_to_check(const std::string& url) {
  if (url.starts_with("sqlite://"))
    return "that the directory exists and is writable, the disk has room, and the file is an ingest queue";
  if (url.starts_with("nats://") || url.starts_with("tls://"))
    return "that nats-server runs with JetStream (-js) at that address, the credentials, and the stream's settings";
  if (url.starts_with("sqs+"))
    return "that the endpoint answers, the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE), "
           "the region and the queue's attributes";
  return "the URL";
}

}  // namespace

std::string redact_url(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const auto start = scheme + 3;
  const auto end = url.find_first_of("/?", start);
  const auto at = url.rfind('@', end == std::string::npos ? url.size() : end);
  if (at == std::string::npos || at < start) return url;
  const auto colon = url.find(':', start);
  const bool user_and_password = colon != std::string::npos && colon < at;
  return url.substr(0, start) + (user_and_password ? url.substr(start, colon - start) + ":***" : "***") +
         url.substr(at);
}

std::unique_ptr<ingest::durable_queue> open_queue(const std::string& url, ingest::durable_queue::executor_type ex) {
  try {
    return make_queue(url, std::move(ex));
  } catch (const ingest::error& e) {
    throw std::runtime_error("cannot open the queue " + redact_url(url) + ": " + e.what() + "; check " +
                             what_to_check(url));
  }
}

}  // namespace exam
