#pragma once
// Queue backends by URL, for the servers' --queue option.

#include <memory>
#include <string>

#include "ingest/durable_queue.hpp"

namespace exam {

// "sqlite://PATH[?options]" (the embedded default), "memory" (not durable),
// "nats://HOST:PORT[?options]" / "tls://..." when built with NATS,
// "sqs+http[s]://HOST:PORT/ACCOUNT/QUEUE[?options]" when built with SQS.
// Throws std::runtime_error naming the URL (its password or token hidden), what went
// wrong and what to check, when the URL is bad or the queue cannot be opened.
std::unique_ptr<ingest::durable_queue> open_queue(const std::string& url, ingest::durable_queue::executor_type ex);
// `url` with the password or token of its user information replaced by `***`.
std::string redact_url(const std::string& url);

}  // namespace exam
