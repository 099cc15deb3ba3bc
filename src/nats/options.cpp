// queue_options: the range checks, and reading the options from a nats:// URL.

#include "core/url_params.hpp"
#include "ingest/error.hpp"
#include "ingest/nats/queue.hpp"

namespace ingest::nats {

void queue_options::validate() const {
  auto bad = [](const std::string& what) { throw error(errc::invalid_config, "nats queue: " + what); };
  if (servers.empty()) bad("at least one server URL is needed");
  if (stream.empty() || subject.empty() || dead_letter_stream.empty() || dead_letter_subject.empty())
    bad("stream, subject and their dead-letter counterparts must be set");
  if (stream == dead_letter_stream || subject == dead_letter_subject)
    bad("the dead-letter stream and subject must differ from the main ones");
  if (consumer.empty()) bad("consumer must be set");
  if (replicas < 1 || replicas > 5) bad("replicas must be 1 to 5");
  if (partitions < 1 || partitions > max_partitions) bad("partitions must be 1 to " + std::to_string(max_partitions));
  if (partition < -1 || partition >= partitions) bad("partition must be -1 or below partitions");
  if (duplicate_window <= std::chrono::milliseconds::zero()) bad("duplicate_window must be positive");
  if (max_messages < 0 || max_bytes < 0) bad("max_messages and max_bytes must not be negative");
  if (ack_wait < std::chrono::milliseconds(100)) bad("ack_wait must be at least 100ms");
  if (max_deliver == 0 || max_deliver < -1) bad("max_deliver must be -1 (unlimited) or at least 1");
  if (!redelivery_backoff.empty() &&
      (max_deliver == -1 || max_deliver <= static_cast<std::int64_t>(redelivery_backoff.size())))
    bad("redelivery_backoff needs max_deliver greater than its length");
  if (max_ack_pending < 1) bad("max_ack_pending must be at least 1");
  if (max_pending_publishes == 0) bad("max_pending_publishes must be at least 1");
  if (publish_timeout <= std::chrono::milliseconds::zero() || request_timeout <= std::chrono::milliseconds::zero())
    bad("timeouts must be positive");
  if (compaction_interval <= std::chrono::milliseconds::zero()) bad("compaction_interval must be positive");
  // Files that would be ignored are a mistake to point out, not to pass over.
  if (!tls && (!tls_ca_file.empty() || !tls_cert_file.empty() || !tls_key_file.empty()))
    bad("tls_ca, tls_cert and tls_key need TLS on (a tls:// URL, or tls=true)");
  if (tls_cert_file.empty() != tls_key_file.empty()) bad("tls_cert and tls_key go together");
  if (!token.empty() && !user.empty()) bad("a token and a user name are two ways to sign in: give one");
}

namespace {

// The URL parameters other than the hosts, credentials and `tls`.
void read_params(ingest::detail::url_query& params, queue_options& o) {
  params.set("stream", o.stream);
  params.set("subject", o.subject);
  params.set("dead_letter_stream", o.dead_letter_stream);
  params.set("dead_letter_subject", o.dead_letter_subject);
  params.set("consumer", o.consumer);
  params.set("replicas", o.replicas);
  params.set("partitions", o.partitions);
  if (auto v = params.take("storage")) {
    if (*v != "file" && *v != "memory") throw error(errc::invalid_config, "nats URL: storage must be file or memory");
    o.file_storage = *v == "file";
  }
  params.set("duplicate_window", o.duplicate_window);
  params.set("ack_wait", o.ack_wait);
  params.set("publish_timeout", o.publish_timeout);
  params.set("max_deliver", o.max_deliver);
  params.set("max_ack_pending", o.max_ack_pending);
  params.set("max_messages", o.max_messages);
  params.set("max_bytes", o.max_bytes);
  params.set("creds", o.credentials_file);
  params.set("tls_ca", o.tls_ca_file);
  params.set("tls_cert", o.tls_cert_file);
  params.set("tls_key", o.tls_key_file);
}

}  // namespace

queue_options queue_options::for_partition(int i) const {
  queue_options o = *this;
  if (i < 0 || i >= partitions) throw error(errc::invalid_config, "nats queue: no partition " + std::to_string(i));
  const auto n = std::to_string(i);
  o.stream += "-" + n;
  o.subject += "." + n;
  o.dead_letter_stream += "-" + n;
  o.dead_letter_subject += "." + n;
  o.partition = i;
  return o;
}

queue_options queue_options::from_url(std::string_view url) {
  constexpr std::string_view what = "nats URL";
  queue_options o;
  std::string_view rest;
  bool tls_scheme = false;
  if (url.rfind("nats://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("tls://", 0) == 0) {
    rest = url.substr(6);
    tls_scheme = true;
  } else {
    throw error(errc::invalid_config, "not a nats:// or tls:// URL");  // never echoed: it may hold a password
  }
  // RFC 3986 has no authority with several hosts (a NATS cluster): the hosts are split
  // here, and every part is percent-decoded.
  const auto q = rest.find('?');
  auto hosts = rest.substr(0, q);
  if (const auto at = hosts.rfind('@'); at != std::string_view::npos) {
    const auto credentials = hosts.substr(0, at);
    hosts = hosts.substr(at + 1);
    if (const auto colon = credentials.find(':'); colon != std::string_view::npos) {
      o.user = ingest::detail::percent_decode(what, credentials.substr(0, colon), true);
      o.password = ingest::detail::percent_decode(what, credentials.substr(colon + 1), true);
    } else {
      o.token = ingest::detail::percent_decode(what, credentials, true);
    }
  }
  if (hosts.empty()) throw error(errc::invalid_config, "nats URL without a host");
  ingest::detail::url_query params(what, q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1));
  o.tls = tls_scheme;
  params.set("tls", o.tls);
  if (tls_scheme && !o.tls) throw error(errc::invalid_config, "nats URL: tls:// with tls=false");
  o.servers.clear();
  while (!hosts.empty()) {
    const auto comma = hosts.find(',');
    const auto host = hosts.substr(0, comma);
    if (host.empty()) throw error(errc::invalid_config, "nats URL: an empty host in the list");
    o.servers.push_back(std::string(o.tls ? "tls://" : "nats://") + std::string(host));
    hosts = comma == std::string_view::npos ? std::string_view{} : hosts.substr(comma + 1);
  }
  read_params(params, o);
  params.finish();
  o.validate();
  return o;
}

}  // namespace ingest::nats
